package projections

import "github.com/ghsync/ghsync/merge"

// DefaultStateCache is how many records' decoded merge states a projector
// keeps between batches. Busy records (an institution, a ward, a patient
// seen every week) come back batch after batch, and their states carry
// their whole history: decoding them again was a quarter of a clinic
// catch-up's CPU. The clinic benchmark runs as fast with 4,096 as with
// 16,384; a 1M-event catch-up's peak RSS grew by 75 MiB with 16,384
// (about 4.6 KiB a record, GC headroom included).
const DefaultStateCache = 4096

// stateCache holds the merge states, as committed, of records recent
// batches touched. An entry is valid only while this projector alone has
// written the target since it was made: every batch first checks that the
// stored checkpoints are as this projector's last commit left them, and
// empties the cache otherwise (another projector, or a rebuild, ran in
// between). A batch takes the entries it uses out of the cache and puts
// its records back once it has committed, so a batch that fails leaves
// nothing of its own behind.
type stateCache struct {
	max     int
	entries map[recKey]*cachedState
	// sum is the sum of every checkpoint's position after this
	// projector's last commit (any projector's commit or a rebuild
	// changes it); valid says it is known. seen and own are the sum and
	// this projector's position read at the current batch's start.
	sum, seen, own uint64
	valid          bool
}

type cachedState struct {
	st *merge.State
	// before is the record's stored conflict set, when it was computed
	// (known); otherwise it is computed again when the record changes.
	before []merge.Conflict
	known  bool
}

func newStateCache(max int) *stateCache {
	return &stateCache{max: max, entries: map[recKey]*cachedState{}}
}

// verify takes the checkpoints' sum and this projector's, as read at a
// batch's start (checkTurn), and empties the cache unless they are as
// this projector's last commit left them.
func (c *stateCache) verify(p *Projector, sum, own uint64) {
	c.seen, c.own = sum, own
	if len(c.entries) > 0 && (!c.valid || c.seen != c.sum) {
		p.log.Debug("checkpoints moved under this projector: state cache emptied")
		c.reset()
	}
}

// take removes and returns the cached state of k.
func (c *stateCache) take(k recKey) (*cachedState, bool) {
	e, ok := c.entries[k]
	if ok {
		delete(c.entries, k)
	}
	return e, ok
}

// peek returns the cached state of k, leaving it cached: for reading a
// record the batch does not change (a reference's target).
func (c *stateCache) peek(k recKey) (*cachedState, bool) {
	e, ok := c.entries[k]
	return e, ok
}

// keep puts a committed batch's records back, now that this projector's
// checkpoint is at, making room by dropping arbitrary entries (Go's map
// order) when full.
func (c *stateCache) keep(recs map[recKey]*record, at uint64) {
	c.sum, c.valid = c.seen-c.own+at, true
	if c.max <= 0 {
		return
	}
	for k := range c.entries {
		if len(c.entries)+len(recs) <= c.max {
			break
		}
		delete(c.entries, k)
	}
	for k, rec := range recs {
		if len(c.entries) >= c.max {
			return
		}
		if st := rec.st; st.Created == nil && st.Deleted == nil && len(st.Fields) == 0 {
			continue // nothing stored: loading it costs no decoding
		}
		c.entries[k] = &cachedState{st: rec.st, before: rec.before, known: !rec.pending}
	}
}

func (c *stateCache) reset() {
	clear(c.entries)
	c.valid = false
}
