// Package models describes the Tryton models ghsync synchronises: for each
// model, its table, how its records are identified across the network,
// which stored fields travel and how concurrent writes to them merge.
// Capture reads this to turn row changes into events, projectors read it
// to turn events back into rows, and `ghsync models check` compares it
// with a real database before the first synchronisation.
//
// # Registry
//
// A Registry is a validated, immutable set of Models (NewRegistry).
// GNUHealth returns the shipped catalogue: the 75 GNU Health 4.0 / Tryton
// 6.0 models of the reference report, declared in catalogue_*.go with a
// small language (Define, Key, F, M2O, M2M, Skip, Ext). Registry.Models
// lists them in dependency order, so a projector that creates records in
// that order always finds the targets of required Many2Ones.
//
// # Kinds
//
// A record's network identity never depends on a local id (ids collide
// across instances):
//
//   - UniqueKey: one field unique across the network (party.party's code).
//     A Many2One key field borrows its target's key: a patient is
//     identified by its party's code.
//   - CompositeKey: parent keys plus a local field (a ward is its
//     institution's code plus its name), joined with ledger.JoinKey.
//   - UUIDKey: clinical events, whose local codes come from per-instance
//     sequences (APP 2026/1 exists everywhere). The UUID lives in
//     ghsync's id map; Tryton tables get no extra column.
//
// Reference models (country, subdivision, company, product) are preloaded
// or configured on every instance: they are resolved by key and never
// replicated.
//
// # Invariants
//
// NewRegistry refuses a registry that breaks any of these; Check reports
// a database that breaks them.
//
// Every Many2One and Many2Many target is registered. A field whose target
// is not synchronised is Skipped with a reason and listed in
// Model.NotSynced: nothing is dropped silently (the 2014 engine dropped
// such fields from its payloads, and so could never sync a vaccination,
// whose required vaccine pointed at an unsynchronised model).
//
// Fields are stored fields only. One2Many fields have no column (they
// synchronise through the child's Many2One), Function fields are computed,
// and the audit columns (id, create_uid, create_date, write_uid,
// write_date) belong to each instance.
//
// Key fields exist, have a keyable type, and borrow only from keyed
// models, without cycles. A record whose key field is empty has no
// network identity: capture must refuse it rather than invent one.
//
// Models with an "active" field have Active set. The column's database
// default is false while Tryton's ORM default is true: a row written
// without active = true is invisible in Tryton.
//
// Hazard: a natural key is a network identity only if no two instances
// can generate the same value for different records. Tryton's party
// sequence gives "1", "2", ... on every instance; Check warns about keys
// that look like that, but cannot prove two databases disagree.
//
// Hazard: a required Many2One to a model that is not synchronised (e.g.
// gnuhealth.inpatient.medication's dose_unit) means such records cannot
// be created on a receiving instance. The catalogue names each case in
// the model's comment and Check warns when the column is NOT NULL.
//
// # Merge rules
//
// Each Model carries a merge.Policy: LastWriterWins by default,
// CentralWins for nationally coded master data, OwnedByOrigin for
// clinical documents signed at one clinic, FirstWins for identifiers that
// must never change, Union for every Many2Many. catalogue.go explains the
// choices.
package models
