package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// PublicKeyPrefix starts the text form of a public key: "ed25519:" and the
// key's 32 bytes in standard base64.
const PublicKeyPrefix = "ed25519:"

// GenerateKey makes a new signing key.
func GenerateKey() (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	return priv, err
}

// MarshalPrivateKey is the PEM "PRIVATE KEY" (PKCS #8) form of priv, the
// form OpenSSL reads (openssl pkey -in FILE -pubout).
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey reads what MarshalPrivateKey writes.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("not a PEM PRIVATE KEY (make one with ghsync keygen)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("PEM PRIVATE KEY: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the key is a %T, not an Ed25519 key", k)
	}
	return priv, nil
}

// FormatPublicKey is the text form of pub: "ed25519:" and base64.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return PublicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads a public key from its text form ("ed25519:BASE64"
// or the bare base64, standard or URL alphabet, padded or not) or from a
// PEM "PUBLIC KEY" (PKIX) block, as OpenSSL writes it. Surrounding space
// is ignored.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	data = bytes.TrimSpace(data)
	if bytes.HasPrefix(data, []byte("-----BEGIN")) {
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "PUBLIC KEY" {
			return nil, errors.New("not a PEM PUBLIC KEY")
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM PUBLIC KEY: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("the key is a %T, not an Ed25519 key", k)
		}
		return pub, nil
	}
	s := strings.TrimPrefix(string(data), PublicKeyPrefix)
	s = strings.TrimRight(s, "=")
	s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
	raw, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("not an Ed25519 public key (want %sBASE64 of %d bytes, as ghsync keygen prints)", PublicKeyPrefix, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}
