package projections_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ghsync/ghsync/clocks"
	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/ledger/ledgertest"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// replica is one simulated instance: it writes events with Base values
// taken from its own merged view, and now and then learns what the others
// wrote, so the workload has both concurrent and causally later writes.
type replica struct {
	o      *ledgertest.Origin
	view   map[string]*merge.State // model\x00key → state as this replica sees it
	seen   int                     // events of the shared history applied to view
	reg    *models.Registry
	rng    *rand.Rand
	people []string // party keys this replica knows
}

type workload struct {
	reg      *models.Registry
	rng      *rand.Rand
	replicas []*replica
	events   []*ledger.Event // every event, in the order they were made
	appts    []string
	evals    []string
	wards    []string
}

func newWorkload(tb testing.TB, reg *models.Registry, rng *rand.Rand, origins ...uint16) *workload {
	w := &workload{reg: reg, rng: rng}
	for _, id := range origins {
		o := ledgertest.NewOrigin(id)
		// Clocks apart by a few seconds, so HLC order is not origin order.
		o.Wall.Advance(time.Duration(rng.IntN(5000)) * time.Millisecond)
		w.replicas = append(w.replicas, &replica{o: o, view: map[string]*merge.State{}, reg: reg, rng: rng})
	}
	return w
}

func (r *replica) state(model, key string) *merge.State {
	st := r.view[model+"\x00"+key]
	if st == nil {
		st = &merge.State{}
		r.view[model+"\x00"+key] = st
	}
	return st
}

// sync applies every event made so far to this replica's view.
func (w *workload) sync(r *replica) {
	for ; r.seen < len(w.events); r.seen++ {
		e := w.events[r.seen]
		r.state(e.Model, e.Key).Apply(e)
		if e.Model == "gnuhealth.patient" && e.Op == ledger.OpCreate {
			r.people = append(r.people, e.Key)
		}
	}
}

// emit makes r's next event with Base from r's view, and records it.
func (w *workload) emit(tb testing.TB, r *replica, model, key string, op ledger.Op, fields map[string]ledger.Value) *ledger.Event {
	tb.Helper()
	m, _ := w.reg.Lookup(model)
	st := r.state(model, key)
	r.o.Wall.Advance(time.Duration(1+w.rng.IntN(40)) * time.Millisecond)
	e, err := r.o.Make(model, key, op, fields)
	if err != nil {
		tb.Fatal(err)
	}
	if op != ledger.OpDelete {
		// Reseal with real bases: the HLC of the value r replaces.
		base := map[string]clocks.Timestamp{}
		for name := range fields {
			if wr, ok := st.Value(m.Policy, name); ok {
				base[name] = wr.Stamp.HLC
			}
		}
		e.Base = base
		if err := e.Seal(e.PrevHash); err != nil {
			tb.Fatal(err)
		}
		r.o.ResumeAt(ledger.OriginHead{Seq: e.OriginSeq, Hash: e.Hash, MaxHLC: e.HLC})
	}
	st.Apply(e)
	w.events = append(w.events, e)
	return e
}

func ref(tb testing.TB, model, key string) ledger.Value {
	v, err := ledger.RefTo(model, key)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func when(tb testing.TB, t time.Time) ledger.Value {
	v, err := ledger.DateTime(t)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

var givenNames = []string{"Aaliyah", "Andre", "Delroy", "Esther", "Keisha", "Omar", "Rohan", "Tamika"}

// build runs n steps of clinic work across the replicas: central (the
// first replica) sets up categories and institutions; every replica then
// registers people, books and cancels appointments, records evaluations,
// edits shared records concurrently, and syncs now and then.
func (w *workload) build(tb testing.TB, n int) {
	tb.Helper()
	central := w.replicas[0]
	for _, c := range []string{"staff", "vip", "diabetic", "pregnant"} {
		w.emit(tb, central, "party.category", c, ledger.OpCreate, map[string]ledger.Value{"name": ledger.String(c), "active": ledger.Bool(true)})
	}
	for i := 1; i <= 3; i++ {
		pk := fmt.Sprintf("INST-PARTY-%d", i)
		w.emit(tb, central, "party.party", pk, ledger.OpCreate, map[string]ledger.Value{"code": ledger.String(pk), "name": ledger.String(fmt.Sprintf("Health Centre %d", i))})
		ik := fmt.Sprintf("HC%d", i)
		w.emit(tb, central, "gnuhealth.institution", ik, ledger.OpCreate, map[string]ledger.Value{"code": ledger.String(ik), "name": ref(tb, "party.party", pk), "beds": ledger.Int(int64(10 * i))})
		for _, ward := range []string{"Ward A", "Ward B/C"} {
			wk := ledger.JoinKey(ik, ward)
			w.emit(tb, central, "gnuhealth.hospital.ward", wk, ledger.OpCreate, map[string]ledger.Value{
				"name": ledger.String(ward), "institution": ref(tb, "gnuhealth.institution", ik), "number_of_beds": ledger.Int(6)})
			w.wards = append(w.wards, wk)
		}
	}
	for _, r := range w.replicas {
		w.sync(r)
	}
	day := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for step := 0; step < n; step++ {
		r := w.replicas[w.rng.IntN(len(w.replicas))]
		switch x := w.rng.IntN(100); {
		case x < 6:
			w.sync(r)
		case x < 22 || len(r.people) == 0:
			w.register(tb, r)
		case x < 40:
			p := r.people[w.rng.IntN(len(r.people))]
			fields := map[string]ledger.Value{}
			switch w.rng.IntN(4) {
			case 0:
				fields["lastname"] = ledger.String([]string{"Brown", "Campbell", "Reid", "Smith"}[w.rng.IntN(4)])
			case 1:
				fields["dob"], _ = ledger.Date(day.AddDate(-20-w.rng.IntN(50), 0, w.rng.IntN(300)))
			case 2:
				cats := []ledger.Ref{}
				for _, c := range []string{"staff", "vip", "diabetic", "pregnant"} {
					if w.rng.IntN(2) == 0 {
						cats = append(cats, ledger.Ref{Model: "party.category", Key: c})
					}
				}
				fields["categories"], _ = ledger.RefSet(cats...)
			case 3:
				fields["ref"] = ledger.String(fmt.Sprintf("JM%06d", w.rng.IntN(5))) // few values: equal writes happen
			}
			w.emit(tb, r, "party.party", p, ledger.OpWrite, fields)
		case x < 60:
			k := uuid.New().String()
			w.emit(tb, r, "gnuhealth.appointment", k, ledger.OpCreate, map[string]ledger.Value{
				"patient":          ref(tb, "gnuhealth.patient", r.people[w.rng.IntN(len(r.people))]),
				"institution":      ref(tb, "gnuhealth.institution", fmt.Sprintf("HC%d", 1+w.rng.IntN(3))),
				"appointment_date": when(tb, day.Add(time.Duration(w.rng.IntN(2000))*time.Minute)),
				"state":            ledger.String("confirmed"),
			})
			w.appts = append(w.appts, k)
		case x < 75 && len(w.appts) > 0:
			a := w.appts[w.rng.IntN(len(w.appts))]
			if r.state("gnuhealth.appointment", a).Created == nil {
				w.sync(r)
			}
			if w.rng.IntN(5) == 0 {
				w.emit(tb, r, "gnuhealth.appointment", a, ledger.OpDelete, nil)
			} else {
				w.emit(tb, r, "gnuhealth.appointment", a, ledger.OpWrite, map[string]ledger.Value{"state": ledger.String([]string{"checked_in", "done", "no_show"}[w.rng.IntN(3)])})
			}
		case x < 90:
			k := uuid.New().String()
			f := map[string]ledger.Value{
				"patient":          ref(tb, "gnuhealth.patient", r.people[w.rng.IntN(len(r.people))]),
				"evaluation_start": when(tb, day.Add(time.Duration(w.rng.IntN(2000))*time.Minute+123456*time.Microsecond)),
				"chief_complaint":  ledger.String("fever"),
			}
			f["weight"], _ = ledger.Decimal(fmt.Sprintf("%d.%d0", 40+w.rng.IntN(60), w.rng.IntN(10)))
			if len(w.appts) > 0 {
				f["appointment"] = ref(tb, "gnuhealth.appointment", w.appts[w.rng.IntN(len(w.appts))])
			}
			w.emit(tb, r, "gnuhealth.patient.evaluation", k, ledger.OpCreate, f)
			w.evals = append(w.evals, k)
		default:
			wk := w.wards[w.rng.IntN(len(w.wards))]
			w.emit(tb, r, "gnuhealth.hospital.ward", wk, ledger.OpWrite, map[string]ledger.Value{"state": ledger.String([]string{"full", "beds_available"}[w.rng.IntN(2)])})
		}
	}
}

// register creates a person and their patient record in one transaction;
// now and then two replicas register the same person (a duplicate
// registration under the same network key).
func (w *workload) register(tb testing.TB, r *replica) {
	n := w.rng.IntN(1 << 30)
	if len(r.people) > 0 && w.rng.IntN(10) == 0 {
		n = -1 // re-register someone another replica may also have
	}
	key := fmt.Sprintf("%s-%d", uuid.New().String()[:8], n)
	if n == -1 {
		key = fmt.Sprintf("DUP-%d", w.rng.IntN(3))
	}
	dob, _ := ledger.Date(time.Date(1950+w.rng.IntN(60), time.Month(1+w.rng.IntN(12)), 1+w.rng.IntN(28), 0, 0, 0, 0, time.UTC))
	w.emit(tb, r, "party.party", key, ledger.OpCreate, map[string]ledger.Value{
		"code": ledger.String(key), "name": ledger.String(givenNames[w.rng.IntN(len(givenNames))]),
		"lastname": ledger.String("Williams"), "dob": dob, "gender": ledger.String([]string{"f", "m"}[w.rng.IntN(2)]),
		"active": ledger.Bool(true),
	})
	w.emit(tb, r, "gnuhealth.patient", key, ledger.OpCreate, map[string]ledger.Value{
		"name": ref(tb, "party.party", key), "blood_type": ledger.String([]string{"A", "B", "O"}[w.rng.IntN(3)]), "active": ledger.Bool(true)})
	r.people = append(r.people, key)
}
