package models

import (
	"errors"
	"strings"
)

// ErrInvalidRegistry is what every NewRegistry validation error matches
// (errors.Is).
var ErrInvalidRegistry = errors.New("models: invalid registry")

// ValidationError lists every problem NewRegistry found, one per line,
// each starting with the model it concerns.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	return "models: invalid registry: " + strings.Join(e.Problems, "; ")
}

// Is makes errors.Is(err, ErrInvalidRegistry) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidRegistry }
