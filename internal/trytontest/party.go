package trytontest

import (
	"testing"
)

// Party is a party.party to create, with its addresses (party.address) and
// contact mechanisms (party.contact_mechanism).
type Party struct {
	// Code is party_party.code; empty means trytond takes the next code of
	// the party sequence ("1", "2"... in every database).
	Code string
	Name string
	// Inactive creates the party with active = false.
	Inactive          bool
	Addresses         []Address
	ContactMechanisms []ContactMechanism
}

// Address is a party.address to create.
type Address struct {
	Street     string // a Text field: may hold several lines
	City       string
	PostalCode string
}

// ContactMechanism is a party.contact_mechanism to create.
type ContactMechanism struct {
	// Type is one of phone, mobile, fax, email, website, skype, sip, irc,
	// jabber, other.
	Type string
	// Value is the number, address...; trytond reformats phone numbers
	// (+18765550100 is stored as "+1 876-555-0100", with ValueCompact
	// "+18765550100") and rejects invalid ones.
	Value string
}

// PartyRow is a party as read back.
type PartyRow struct {
	ID                int                   `json:"id"`
	Code              string                `json:"code"`
	Name              string                `json:"name"`
	Active            bool                  `json:"active"`
	CreateUID         int                   `json:"create_uid"` // 0 if NULL
	WriteUID          int                   `json:"write_uid"`  // 0 until the first write
	Addresses         []AddressRow          `json:"addresses."`
	ContactMechanisms []ContactMechanismRow `json:"contact_mechanisms."`
}

// AddressRow is a party.address as read back.
type AddressRow struct {
	ID         int    `json:"id"`
	Street     string `json:"street"`
	City       string `json:"city"`
	PostalCode string `json:"postal_code"`
	Active     bool   `json:"active"`
}

// ContactMechanismRow is a party.contact_mechanism as read back.
type ContactMechanismRow struct {
	ID           int    `json:"id"`
	Type         string `json:"type"`
	Value        string `json:"value"`
	ValueCompact string `json:"value_compact"`
	Active       bool   `json:"active"`
}

// partyFields are the fields SearchParties reads.
var partyFields = []string{
	"code", "name", "active", "create_uid", "write_uid",
	"addresses.street", "addresses.city", "addresses.postal_code", "addresses.active",
	"contact_mechanisms.type", "contact_mechanisms.value", "contact_mechanisms.value_compact", "contact_mechanisms.active",
}

// Values returns p as the values of a create. The party gets exactly the
// addresses of p: none if p has none (trytond would otherwise add one empty
// address, its default when a user other than root creates a party).
func (p Party) Values() Values {
	v := Values{"name": p.Name}
	if p.Code != "" {
		v["code"] = p.Code
	}
	if p.Inactive {
		v["active"] = false
	}
	addresses := []any{}
	if len(p.Addresses) > 0 {
		vals := make([]Values, len(p.Addresses))
		for i, a := range p.Addresses {
			vals[i] = Values{"street": a.Street, "city": a.City, "postal_code": a.PostalCode}
		}
		addresses = append(addresses, ActionCreate(vals...))
	}
	v["addresses"] = addresses
	if len(p.ContactMechanisms) > 0 {
		vals := make([]Values, len(p.ContactMechanisms))
		for i, c := range p.ContactMechanisms {
			vals[i] = Values{"type": c.Type, "value": c.Value}
		}
		v["contact_mechanisms"] = []any{ActionCreate(vals...)}
	}
	return v
}

// CreateParties creates parties in one transaction and returns their ids,
// in order.
func (db *DB) CreateParties(tb testing.TB, parties ...Party) []int {
	tb.Helper()
	vals := make([]Values, len(parties))
	for i, p := range parties {
		vals[i] = p.Values()
	}
	return Decode[[]int](tb, db.Do(tb, Create("party.party", vals...))[0])
}

// WriteParty writes values (party.party field names: "name", "code",
// "active", "addresses" with actions...) to the party id.
func (db *DB) WriteParty(tb testing.TB, id int, values Values) {
	tb.Helper()
	db.Do(tb, Write("party.party", []int{id}, values))
}

// DeleteParties deletes the parties ids; PostgreSQL deletes their addresses
// and contact mechanisms with them (ON DELETE CASCADE).
func (db *DB) DeleteParties(tb testing.TB, ids ...int) {
	tb.Helper()
	db.Do(tb, Delete("party.party", ids...))
}

// SearchParties returns the parties matching domain, inactive ones included
// (add Clause("active", "=", true) to leave them out), ordered by id, with
// all their addresses and contact mechanisms (inactive ones too).
func (db *DB) SearchParties(tb testing.TB, domain Domain) []PartyRow {
	tb.Helper()
	op := SearchRead("party.party", domain, partyFields...).
		WithContext(map[string]any{"active_test": false}).
		OrderBy("id", "ASC")
	return Decode[[]PartyRow](tb, db.Do(tb, op)[0])
}

// ReadParty returns the party id, failing the test if there is none.
func (db *DB) ReadParty(tb testing.TB, id int) PartyRow {
	tb.Helper()
	rows := db.SearchParties(tb, Domain{Clause("id", "=", id)})
	if len(rows) != 1 {
		tb.Fatalf("trytontest: party %d: found %d parties in %s", id, len(rows), db.Name)
	}
	return rows[0]
}
