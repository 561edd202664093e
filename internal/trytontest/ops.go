package trytontest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Values are a record's field values as trytond's ORM takes them: Char and
// Text as strings, Many2One as an id, One2Many and Many2Many as a list of
// actions (ActionCreate...). Dates and other non-JSON types go in
// trytond's JSON-RPC encoding ({"__class__": "date", "year": ...}).
type Values map[string]any

// Domain is a Tryton search domain, for example
//
//	Domain{[]any{"name", "=", "Ann"}, []any{"active", "=", true}}
//	Domain{"OR", []any{"code", "=", "1"}, []any{"code", "=", "2"}}
type Domain []any

// Clause returns the domain clause (field, operator, value).
func Clause(field, operator string, value any) []any { return []any{field, operator, value} }

// ActionCreate is the One2Many/Many2Many action creating target records.
func ActionCreate(values ...Values) []any { return []any{"create", values} }

// ActionWrite is the One2Many/Many2Many action writing values to the
// target records ids.
func ActionWrite(ids []int, values Values) []any { return []any{"write", ids, values} }

// ActionDelete is the One2Many/Many2Many action deleting the target
// records ids.
func ActionDelete(ids ...int) []any { return []any{"delete", ids} }

// ActionAdd and ActionRemove link and unlink existing target records.
func ActionAdd(ids ...int) []any    { return []any{"add", ids} }
func ActionRemove(ids ...int) []any { return []any{"remove", ids} }

// Op is one operation that trytond's ORM runs (driver.py). Build it with
// Create, Write, Delete, Search, SearchCount, SearchRead, Read, UserCreate,
// Call, CallOn or Python, and adjust it with As, WithContext, OrderBy and
// Limited.
type Op struct {
	Op       string         `json:"op"`
	Model    string         `json:"model,omitempty"`
	User     string         `json:"user,omitempty"`    // login to run as; default the request's
	Context  map[string]any `json:"context,omitempty"` // added to the transaction's context
	Values   any            `json:"values,omitempty"`  // []Values (create), Values (write, user_create)
	IDs      []int          `json:"ids,omitempty"`
	Domain   Domain         `json:"domain,omitempty"`
	Fields   []string       `json:"fields,omitempty"`
	Order    [][2]string    `json:"order,omitempty"` // {field, "ASC"|"DESC"}
	Offset   int            `json:"offset,omitempty"`
	Limit    int            `json:"limit,omitempty"`
	Login    string         `json:"login,omitempty"`
	Name     string         `json:"name,omitempty"`
	Password string         `json:"password,omitempty"`
	Method   string         `json:"method,omitempty"`
	Records  *[]int         `json:"records,omitempty"` // call: records passed first
	Args     any            `json:"args,omitempty"`    // call: []any; python: anything
	Code     string         `json:"code,omitempty"`
}

// Create creates records of model; its result is their ids ([]int).
func Create(model string, values ...Values) Op {
	if values == nil {
		values = []Values{}
	}
	return Op{Op: "create", Model: model, Values: values}
}

// Write writes values to the records ids of model; its result is null.
func Write(model string, ids []int, values Values) Op {
	return Op{Op: "write", Model: model, IDs: ids, Values: values}
}

// Delete deletes the records ids of model; its result is null.
func Delete(model string, ids ...int) Op { return Op{Op: "delete", Model: model, IDs: ids} }

// Search searches model; its result is the ids found ([]int).
func Search(model string, domain Domain) Op { return Op{Op: "search", Model: model, Domain: domain} }

// SearchCount counts the records of model matching domain (int).
func SearchCount(model string, domain Domain) Op {
	return Op{Op: "search_count", Model: model, Domain: domain}
}

// SearchRead searches model and reads fields (all if none) of the records
// found; its result is a list of objects with "id" and the fields. Fields
// may be dotted ("addresses.city"): the object then has "addresses." with
// the targets' objects. Many2One fields read as ids.
func SearchRead(model string, domain Domain, fields ...string) Op {
	return Op{Op: "search_read", Model: model, Domain: domain, Fields: fields}
}

// Read reads fields (all if none) of the records ids of model, as
// SearchRead does.
func Read(model string, ids []int, fields ...string) Op {
	return Op{Op: "read", Model: model, IDs: ids, Fields: fields}
}

// UserCreate creates a res.user (as root, without groups) with login and
// name; its result is the user's id. Later ops, and later requests, can
// run as that user through As(login).
func UserCreate(login, name string) Op { return Op{Op: "user_create", Login: login, Name: name} }

// Call calls the class method model.method(args...); its result is the
// method's return value (records become ids).
func Call(model, method string, args ...any) Op {
	return Op{Op: "call", Model: model, Method: method, Args: args}
}

// CallOn calls model.method(records, args...) with the records ids.
func CallOn(model, method string, ids []int, args ...any) Op {
	return Op{Op: "call", Model: model, Method: method, Records: &ids, Args: args}
}

// Python runs code (Python 3) in the transaction, with the globals pool
// (the database's Pool), Pool, Transaction and args (JSON-decoded); its
// result is whatever the code assigns to the global result. For example
//
//	Python(`Party = pool.get('party.party')
//	result = [p.rec_name for p in Party.search([])]`, nil)
func Python(code string, args any) Op { return Op{Op: "python", Code: code, Args: args} }

// As returns op to be run as the Tryton user login (create_uid and
// write_uid are that user's id). Access rights are not checked unless the
// context has "_check_access": true, as in trytond's own ORM.
func (op Op) As(login string) Op { op.User = login; return op }

// WithContext returns op with ctx added to the transaction's context for
// it, for example {"active_test": false} to see inactive records.
func (op Op) WithContext(ctx map[string]any) Op {
	merged := make(map[string]any, len(op.Context)+len(ctx))
	for k, v := range op.Context {
		merged[k] = v
	}
	for k, v := range ctx {
		merged[k] = v
	}
	op.Context = merged
	return op
}

// OrderBy returns op sorted by field in direction ("ASC" or "DESC"), after
// any order it had.
func (op Op) OrderBy(field, direction string) Op {
	op.Order = append(op.Order[:len(op.Order):len(op.Order)], [2]string{field, direction})
	return op
}

// Limited returns op returning at most limit records after skipping offset.
func (op Op) Limited(offset, limit int) Op { op.Offset, op.Limit = offset, limit; return op }

// String describes op for error messages.
func (op Op) String() string {
	switch {
	case op.Model != "" && op.Method != "":
		return op.Op + " " + op.Model + "." + op.Method
	case op.Model != "":
		return op.Op + " " + op.Model
	case op.Login != "":
		return op.Op + " " + op.Login
	}
	return op.Op
}

// Error is trytond's refusal of a request: the exception an op (or the
// commit) raised. The whole request was rolled back.
type Error struct {
	Op        int    `json:"op"`        // index of the op that raised; -1 for the commit or the request
	Type      string `json:"type"`      // the exception's class, e.g. "UserError", "IntegrityError"
	Message   string `json:"message"`   // its message (and a UserError's description)
	Traceback string `json:"traceback"` // the Python traceback
	Request   Op     `json:"-"`         // the op that raised, if Op >= 0
}

func (e *Error) Error() string {
	where := "the request"
	if e.Op >= 0 {
		where = fmt.Sprintf("op %d (%s)", e.Op, e.Request)
	}
	return fmt.Sprintf("trytond: %s: %s: %s\n%s", where, e.Type, e.Message, strings.TrimSpace(e.Traceback))
}

// Try runs ops through trytond's ORM in one transaction as db's user
// ("admin" unless db is an As view), commits it, and returns one JSON
// result per op. If trytond raises, the transaction is rolled back and the
// error is an *Error. The trytond process of db is started by the first
// request (about a second, loading the Pool) and serves the later ones
// (a few milliseconds each plus the work).
func (db *DB) Try(ops ...Op) ([]json.RawMessage, error) {
	db.s.mu.Lock()
	defer db.s.mu.Unlock()
	if db.s.closed {
		return nil, fmt.Errorf("trytontest: %s was dropped", db.Name)
	}
	if db.s.drv == nil {
		drv, err := startDriver(db.Conf, db.Name)
		if err != nil {
			return nil, fmt.Errorf("trytontest: %s: %w", db.Name, err)
		}
		db.s.drv = drv
	}
	results, err := db.s.drv.do(request{User: db.user, Ops: ops})
	if err != nil {
		var refused *Error
		if !errors.As(err, &refused) {
			// The process is broken; the next request starts another.
			db.s.drv.stop()
			db.s.drv = nil
			return nil, fmt.Errorf("trytontest: %s: %w", db.Name, err)
		}
	}
	return results, err
}

// Do is Try that fails the test, with trytond's traceback, on error.
func (db *DB) Do(tb testing.TB, ops ...Op) []json.RawMessage {
	tb.Helper()
	results, err := db.Try(ops...)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	return results
}

// Run runs a Python snippet (see Python) in its own transaction and
// returns its result.
func (db *DB) Run(tb testing.TB, code string, args any) json.RawMessage {
	tb.Helper()
	return db.Do(tb, Python(code, args))[0]
}

// Decode decodes a result of Do into a T, failing the test if it cannot.
func Decode[T any](tb testing.TB, raw json.RawMessage) T {
	tb.Helper()
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		tb.Fatalf("trytontest: decoding %s as %T: %v", raw, v, err)
	}
	return v
}

// CreateUser creates the Tryton user login (see UserCreate) and returns
// its id; db.As(login) then acts as that user.
func (db *DB) CreateUser(tb testing.TB, login, name string) int {
	tb.Helper()
	return Decode[int](tb, db.Do(tb, UserCreate(login, name))[0])
}
