// Package satellite is a satellite's side of the synchronisation
// protocol (package wire): Push sends this origin's events central does
// not hold yet (central's high-water mark says which: nothing to persist),
// Pull fetches central's events after a persisted cursor page by page, and
// New fetches a patient's whole record graph on demand.
//
// A page is appended only once it has been received and decoded whole;
// the cursor is persisted after the append, beside the satellite's ledger
// (table ghsync_sync_state, or ghsync.sync_state in PostgreSQL). A
// transfer cut anywhere resumes from the last whole page, and appends are
// idempotent anyway. The cursor belongs to central's identity, not to the
// URL central is reached at; another central is refused (ErrOtherCentral).
// A widening of the satellite's scope that central announces sets the
// cursor back to 0. Errors worth retrying later match ErrUnavailable.
package satellite
