package capture_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
	"github.com/ghsync/ghsync/projections"
)

// TestSitesKeepEveryPerson: users at three sites register, rename,
// recode and delete people, each site working on the rows it sees (its
// own and those it received), while drains, exchanges and projections
// happen at random points, so sites edit the same people concurrently
// and reuse codes that another site's unseen edit still names. Each
// person's name carries a token no other person's ever has. After a full
// exchange every site holds the same rows, a person nobody deleted is at
// every site, and nothing is left parked or set aside.
//
// No person appears twice, except one whose code two sites changed: two
// concurrent corrections of one code each move the identity, and the
// person then has both new codes (ARCHITECTURE.md, "Key changes"); the
// site must then list a "concurrent move" conflict.
// GHSYNC_TEST_SEED=N|random: see seededRuns.
func TestSitesKeepEveryPerson(t *testing.T) {
	// Seeds that found bugs, each on one layout in turn: a delete of the
	// first life ended a second one begun elsewhere (merge.Saw); a rename
	// of an earlier life moved the new person's row; a new row took a code
	// before the row leaving it had left; the id map kept a moved row's id
	// after its delete; a rename of a later life moved the ended life's
	// row; a concurrent delete of the old life kept a revival from
	// beginning; a chain of corrections collided; two corrections of one
	// code, reported; two rows swapping codes through a third stopped the
	// projection (setAside); a row moved onto a code whose earlier and
	// new lives both ended in one batch, left behind (endedRow).
	runSites(t, "TestSitesKeepEveryPerson", world{}, 1, 2, 5595364040360134503, 16429916549452058344, 6658724963601421296,
		2373952714995422296, 8762180189205968279, 16510941353973785108, 12831236072254177195, 12760518797544887104)
}

// TestSitesKeepEveryAddress is TestSitesKeepEveryPerson with addresses:
// users also add addresses to the people they see, edit, move and delete
// them, so references race with deletes, code corrections and reused
// codes. After a full exchange every site holds the same addresses, an
// address is attached only to a person a user attached it to, and one
// that nobody deleted, of people nobody deleted, is at every site.
func TestSitesKeepEveryAddress(t *testing.T) {
	// Seeds 1-3 found an address on a person no user put it on: its
	// reference meant a life of its target that had ended (ledger.Ref.Saw).
	// Seed 3 then found sites parking different records: a cascade had
	// taken an address's row at one (projections/cascade.go). The last
	// found a late code correction of an ended life leaving an alias that
	// took references to the key's new person (projections.Alias). The
	// next: a code corrected back and forth and on in one batch left the
	// person's row to the key's next person (moveOrder); a row whose
	// address moved to a person deleted elsewhere stayed at its site
	// alone (orphaned), twice; a reference meant for a person deleted at
	// one site and recoded at another died with the old code.
	runSites(t, "TestSitesKeepEveryAddress", world{addresses: true}, 1, 2, 3, 4, 13819486294911018449,
		4477292957734430825, 9326383582942146823, 6010831504052782088, 16739497440563644604)
}

// TestSitesKeepEveryPatient is TestSitesKeepEveryAddress with patient
// records: users also register people as patients, edit their critical
// information, point their current address at an address they see and
// delete patient records (a person's first, as Tryton requires, since a
// patient restricts its person's delete). A patient's key is its
// person's code, so code corrections move it too. After a full exchange
// every site holds the same patients, each on the person a user
// registered it for, with an address a user gave it, and a patient
// nobody deleted, of a person nobody deleted, is at every site.
func TestSitesKeepEveryPatient(t *testing.T) {
	// Seeds that found bugs: two patient records of one person, one under
	// the code it had before a correction made elsewhere (borrowed keys,
	// projections/borrow.go); a reference to a person deleted at one site
	// and recoded at another (merge.State.Meant), twice; a patient row
	// moving in the batch that deleted its person's old row, lost with it
	// (projections.movedRow); addresses parked at one site after a
	// person's delete, not taken up when a concurrent correction of the
	// code arrived (projections.Hops); a patient record deleted in the
	// drain that corrected its person's code and gave the old code to
	// another person, its delete naming the other's record
	// (capture.borrowersOf); a row moved to a reused code and kept for
	// the code's next person, with an address on it (lifeEnded); a new
	// person's patient record captured under a code a stale record still
	// held here, merged into it (capture.keyFree); a correction to the
	// code of a person deleted in the same batch, not followed by the
	// corrected person's row (projections.endedRow); a stale patient
	// record whose row went with its person's delete, never moved
	// (projections.noticeRowless). The last three: a registration made
	// under a code corrected elsewhere meanwhile and the new person's
	// registration under the freed code, taken for one record (lost,
	// shown with the other's values, deleted with the stale one: merge
	// lender lives, capture/lenders.go).
	runSites(t, "TestSitesKeepEveryPatient", world{addresses: true, patients: true}, 1, 2, 3, 4,
		16666822827799462730, 14120318031196798187, 8163403392168063381, 15100783668800212754,
		6157309498759814265, 15960481085519177285, 16243542967340620226, 4959121642114368337,
		11848340936947222508, 923532251618543364, 9168868931257786103, 9906716274561974549,
		7011487381123663865)
}

// TestSitesKeepEveryAppointment is TestSitesKeepEveryPatient with
// appointments: users book appointments for the patients they see,
// change them, move them to another patient and cancel (delete) them.
// An appointment is identified by UUID and its patient is optional: every
// site holds every appointment nobody cancelled, each with a patient of a
// person a user booked it for, or none once that patient record is gone.
func TestSitesKeepEveryAppointment(t *testing.T) {
	// Seeds that found bugs: a patient record written pointing at an
	// address whose row went with its person in the same round (the
	// projection stopped on the foreign key); an address of a person
	// deleted after taking a code an earlier person had left, shown on
	// that earlier person through the alias of their correction
	// (projections.Named); an appointment left parked at one site, waiting
	// for a patient record that got its row by a move captured there
	// (parkedOn's arrivals); an appointment left without its patient at
	// the one site whose row had followed a concurrent correction, when
	// the other came with a delete of that copy (refollow's
	// splitReferrers). The last three: a stale registration and the
	// reused code's new one taken for one record (merge lender lives).
	// Lender lives built, seeds above found an appointment left without
	// its patient when the patient moved to a reused code (the move's
	// ledger.Ref.Lender) or followed a chain of its person's corrections
	// (lenderMoved), and the first of the three a registration captured
	// before the projector applied its person's revival, naming the
	// ended life (setLenders).
	runSites(t, "TestSitesKeepEveryAppointment", world{addresses: true, patients: true, appointments: true}, 1, 2, 3, 4,
		13053418312145347942, 352159126673181937, 758048443019339563, 5566138298263574446,
		10501721235593012859, 14123640223865049963, 12059230307601226143)
}

// TestSitesKeepEveryEvaluation is TestSitesKeepEveryAppointment with
// evaluations (the chain party → patient → appointment → evaluation):
// users evaluate the appointments they see, for the appointment's
// patient, edit and delete evaluations. Every site holds every evaluation
// nobody deleted, on the appointment it was made for or none once that is
// cancelled, and on that appointment's patient's person or none.
func TestSitesKeepEveryEvaluation(t *testing.T) {
	// Seeds that found bugs: two patient records given one person's row
	// in one batch, the second written in a later round of the batch,
	// whose reads do not show the first's row (projections.batch.placed);
	// a patient's current address emptied by the database when the
	// address's row went with its deleted person, parked at the sites
	// that got the patient later only (projections.nulled); an evaluation
	// waiting at one site as the appointment above did.
	runSites(t, "TestSitesKeepEveryEvaluation", world{addresses: true, patients: true, appointments: true, evaluations: true}, 1, 2, 3, 4,
		1687331697235776965, 573126634977069369, 18025605919499931918)
}

// world says which records a random history of sitesKeepEveryPerson
// touches besides people.
type world struct{ addresses, patients, appointments, evaluations bool }

// runSites runs sitesKeepEveryPerson for each seed (seededRuns) and
// prints the steps of a failed run.
func runSites(t *testing.T, name string, w world, seeds ...uint64) {
	t.Parallel() // the package's longest tests: they overlap each other and the bulk load
	for _, r := range seededRuns(t, seeds...) {
		seed, lay := r.seed, r.lay
		t.Run(fmt.Sprintf("%s/seed=%d", lay.name, seed), func(t *testing.T) {
			var log []string
			defer func() {
				if t.Failed() {
					t.Logf("seed %d (rerun: GHSYNC_TEST_SEED=%d go test -run %s ./capture/; GHSYNC_TEST_DUMP=1 adds the ledgers), steps:\n%s", seed, seed, name, strings.Join(log, "\n"))
				}
			}()
			sitesKeepEveryPerson(t, rand.New(rand.NewPCG(seed, 0)), lay, &log, w)
		})
	}
}

// sitesKeepEveryPerson runs the random history of TestSitesKeepEveryPerson,
// with address and patient operations among the steps as w says (a seed
// gives the history it always gave for the records it gave it for).
func sitesKeepEveryPerson(t *testing.T, rng *rand.Rand, lay layout, log *[]string, w world) {
	sites := []*site{newSite(t, lay, 1), newSite(t, lay, 2), newSite(t, lay, 3)}
	defer func() {
		if t.Failed() { // GHSYNC_TEST_DUMP=1: and what each site's ledger holds
			for _, s := range sites {
				s.dumpLedger("party.party", "gnuhealth.patient", "gnuhealth.appointment")
			}
		}
	}()
	prefix := func(s *site) string { return string(rune('A' + s.origin - 1)) }
	// rows lists a site's parties in id order: the users' view.
	type row struct {
		id         int64
		code, name string
	}
	rows := func(s *site) []row {
		rs, err := s.db.QueryContext(ctx(t), `SELECT id, code, name FROM party_party ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []row
		for rs.Next() {
			var r row
			if err := rs.Scan(&r.id, &r.code, &r.name); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	// free is a code of the site's own prefix that no row there has:
	// only that site hands out its prefix, so codes collide only with
	// its own earlier ones (reuse), never with another site's.
	free := func(s *site, have []row) (string, bool) {
		for _, n := range rng.Perm(4) {
			c := fmt.Sprintf("%s-%d", prefix(s), n)
			if !slices.ContainsFunc(have, func(r row) bool { return r.code == c }) {
				return c, true
			}
		}
		return "", false
	}
	token := func(name string) string { t, _, _ := strings.Cut(name, "."); return t }
	persons, deleted := 0, map[string]bool{}
	recodedAt := map[string]map[uint16]bool{} // person → sites that changed their code
	logf := func(format string, args ...any) { *log = append(*log, fmt.Sprintf(format, args...)) }

	// addrs lists a site's addresses in id order, with their person.
	type addr struct {
		id                  int64
		street, owner, code string // owner: the person's name; code: theirs
	}
	addrs := func(s *site) []addr {
		rs, err := s.db.QueryContext(ctx(t), `SELECT a.id, a.street, p.name, p.code FROM party_address a JOIN party_party p ON p.id = a.party ORDER BY a.id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []addr
		for rs.Next() {
			var a addr
			if err := rs.Scan(&a.id, &a.street, &a.owner, &a.code); err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
		}
		return out
	}
	places := 0
	ownedBy := map[string]map[string]bool{} // address token → people users attached it to
	placeDeleted := map[string]bool{}
	// pats lists a site's patient records in id order, with their person
	// and current address.
	type pat struct {
		id          int64
		info, owner string // owner: the person's name
		party       int64
		address     string // street, "" for none
	}
	pats := func(s *site) []pat {
		rs, err := s.db.QueryContext(ctx(t), `SELECT x.id, x.critical_info, p.name, p.id, COALESCE(a.street, '') FROM gnuhealth_patient x JOIN party_party p ON p.id = x.name LEFT JOIN party_address a ON a.id = x.current_address ORDER BY x.id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []pat
		for rs.Next() {
			var x pat
			if err := rs.Scan(&x.id, &x.info, &x.owner, &x.party, &x.address); err != nil {
				t.Fatal(err)
			}
			out = append(out, x)
		}
		return out
	}
	records := 0
	registeredFor := map[string]string{}        // patient token → the person users registered it for
	addressedAt := map[string]map[string]bool{} // patient token → address tokens users gave it
	patientDeleted := map[string]bool{}
	ops := 12
	if w.addresses {
		ops = 17
	}
	if w.patients {
		ops = 22
	}
	// appts lists a site's appointments in id order, with their patient's
	// person ("" for none).
	type appt struct {
		id                  int64
		comment, whom, code string // code: whom's
	}
	appts := func(s *site) []appt {
		rs, err := s.db.QueryContext(ctx(t), `SELECT a.id, a.comments, COALESCE(p.name, ''), COALESCE(p.code, '') FROM gnuhealth_appointment a LEFT JOIN gnuhealth_patient x ON x.id = a.patient LEFT JOIN party_party p ON p.id = x.name ORDER BY a.id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []appt
		for rs.Next() {
			var a appt
			if err := rs.Scan(&a.id, &a.comment, &a.whom, &a.code); err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
		}
		return out
	}
	booked := 0
	bookedFor := map[string]map[string]bool{} // appointment token → people users booked it for
	cancelled := map[string]bool{}
	if w.appointments {
		ops = 26
	}
	// evals lists a site's evaluations in id order, with their
	// appointment and their patient's person ("" for none).
	type eval struct {
		id                          int64
		code, visit, whom, whomCode string
	}
	evals := func(s *site) []eval {
		rs, err := s.db.QueryContext(ctx(t), `SELECT e.id, e.code, COALESCE(a.comments, ''), COALESCE(p.name, ''), COALESCE(p.code, '') FROM gnuhealth_patient_evaluation e LEFT JOIN gnuhealth_appointment a ON a.id = e.appointment LEFT JOIN gnuhealth_patient x ON x.id = e.patient LEFT JOIN party_party p ON p.id = x.name ORDER BY e.id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []eval
		for rs.Next() {
			var e eval
			if err := rs.Scan(&e.id, &e.code, &e.visit, &e.whom, &e.whomCode); err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
		return out
	}
	evaluated := 0
	evalOf := map[string]string{}  // evaluation token → the appointment it was made for
	evalFor := map[string]string{} // evaluation token → that appointment's person then
	evalDeleted := map[string]bool{}
	if w.evaluations {
		ops = 29
	}

	for step := range 90 {
		s := sites[rng.IntN(len(sites))]
		have := rows(s)
		switch op := rng.IntN(ops); {
		case op < 3:
			if code, ok := free(s, have); ok && len(have) < 8 {
				persons++
				name := fmt.Sprintf("P%d", persons)
				id := s.insert("party_party", 1, map[string]any{"code": code, "name": name, "active": true})
				logf("%d: origin %d inserts %d %s %s", step, s.origin, id, code, name)
			}
		case op == 3 && len(have) > 0:
			r := have[rng.IntN(len(have))]
			name := fmt.Sprintf("%s.%d", token(r.name), step)
			s.update("party_party", r.id, 1, map[string]any{"name": name})
			logf("%d: origin %d renames %d (%s) %s", step, s.origin, r.id, r.code, name)
		case op == 4 && len(have) > 0:
			r := have[rng.IntN(len(have))]
			if code, ok := free(s, have); ok {
				s.update("party_party", r.id, 1, map[string]any{"code": code})
				if recodedAt[token(r.name)] == nil {
					recodedAt[token(r.name)] = map[uint16]bool{}
				}
				recodedAt[token(r.name)][s.origin] = true
				logf("%d: origin %d recodes %d (%s %s) to %s", step, s.origin, r.id, r.code, r.name, code)
			}
		case op == 5 && len(have) > 0:
			r := have[rng.IntN(len(have))]
			if w.patients {
				for _, x := range pats(s) {
					if x.party == r.id {
						s.exec(`DELETE FROM gnuhealth_patient WHERE id = ?`, x.id)
						patientDeleted[token(x.info)] = true
						logf("%d: origin %d deletes patient %d (%s)", step, s.origin, x.id, x.info)
					}
				}
			}
			s.exec(`DELETE FROM party_party WHERE id = ?`, r.id)
			deleted[token(r.name)] = true
			logf("%d: origin %d deletes %d (%s %s)", step, s.origin, r.id, r.code, r.name)
		case op == 12 || op == 13:
			if len(have) > 0 {
				r := have[rng.IntN(len(have))]
				places++
				street := fmt.Sprintf("A%d", places)
				ownedBy[street] = map[string]bool{token(r.name): true}
				id := s.insert("party_address", 1, map[string]any{"party": r.id, "street": street, "active": true})
				logf("%d: origin %d adds address %d %s to %d (%s %s)", step, s.origin, id, street, r.id, r.code, r.name)
			}
		case op >= 26:
			es, as := evals(s), appts(s)
			switch {
			case op == 26:
				if len(as) == 0 {
					break
				}
				a := as[rng.IntN(len(as))]
				evaluated++
				code := fmt.Sprintf("E%d", evaluated)
				evalOf[code], evalFor[code] = token(a.comment), token(a.whom)
				cols := map[string]any{"appointment": a.id, "code": code, "evaluation_start": "2026-12-01 10:00:00", "discharge_reason": "home"}
				if a.whom != "" {
					cols["patient"] = s.int(`SELECT patient FROM gnuhealth_appointment WHERE id = ?`, a.id)
				}
				id := s.insert("gnuhealth_patient_evaluation", 1, cols)
				logf("%d: origin %d evaluates appointment %d (%s of %s): evaluation %d %s", step, s.origin, a.id, a.comment, a.whom, id, code)
			case len(es) == 0:
			case op == 27:
				e := es[rng.IntN(len(es))]
				code := fmt.Sprintf("%s.%d", token(e.code), step)
				s.update("gnuhealth_patient_evaluation", e.id, 1, map[string]any{"code": code})
				logf("%d: origin %d edits evaluation %d (%s) to %s", step, s.origin, e.id, e.code, code)
			default:
				e := es[rng.IntN(len(es))]
				s.exec(`DELETE FROM gnuhealth_patient_evaluation WHERE id = ?`, e.id)
				evalDeleted[token(e.code)] = true
				logf("%d: origin %d deletes evaluation %d (%s)", step, s.origin, e.id, e.code)
			}
		case op >= 22:
			xs, as := pats(s), appts(s)
			switch {
			case op == 22 || op == 23:
				if len(xs) == 0 {
					break
				}
				x := xs[rng.IntN(len(xs))]
				booked++
				comment := fmt.Sprintf("V%d", booked)
				bookedFor[comment] = map[string]bool{token(x.owner): true}
				id := s.insert("gnuhealth_appointment", 1, map[string]any{"patient": x.id, "comments": comment})
				logf("%d: origin %d books appointment %d %s for patient %d (%s of %s)", step, s.origin, id, comment, x.id, x.info, x.owner)
			case len(as) == 0:
			case op == 24:
				a := as[rng.IntN(len(as))]
				if len(xs) == 0 || rng.IntN(2) == 0 {
					comment := fmt.Sprintf("%s.%d", token(a.comment), step)
					s.update("gnuhealth_appointment", a.id, 1, map[string]any{"comments": comment})
					logf("%d: origin %d edits appointment %d (%s) to %s", step, s.origin, a.id, a.comment, comment)
					break
				}
				x := xs[rng.IntN(len(xs))]
				bookedFor[token(a.comment)][token(x.owner)] = true
				s.update("gnuhealth_appointment", a.id, 1, map[string]any{"patient": x.id})
				logf("%d: origin %d moves appointment %d (%s of %s) to patient %d (%s of %s)", step, s.origin, a.id, a.comment, a.whom, x.id, x.info, x.owner)
			default:
				a := as[rng.IntN(len(as))]
				s.exec(`DELETE FROM gnuhealth_appointment WHERE id = ?`, a.id)
				cancelled[token(a.comment)] = true
				logf("%d: origin %d cancels appointment %d (%s)", step, s.origin, a.id, a.comment)
			}
		case op >= 17:
			xs := pats(s)
			switch {
			case op <= 18:
				free := slices.DeleteFunc(slices.Clone(have), func(r row) bool {
					return slices.ContainsFunc(xs, func(x pat) bool { return x.party == r.id })
				})
				if len(free) == 0 {
					break
				}
				r := free[rng.IntN(len(free))]
				records++
				info := fmt.Sprintf("C%d", records)
				registeredFor[info] = token(r.name)
				id := s.insert("gnuhealth_patient", 1, map[string]any{"name": r.id, "critical_info": info, "active": true})
				logf("%d: origin %d registers patient %d %s for %d (%s %s)", step, s.origin, id, info, r.id, r.code, r.name)
			case len(xs) == 0:
			case op == 19:
				x := xs[rng.IntN(len(xs))]
				info := fmt.Sprintf("%s.%d", token(x.info), step)
				s.update("gnuhealth_patient", x.id, 1, map[string]any{"critical_info": info})
				logf("%d: origin %d edits patient %d (%s) to %s", step, s.origin, x.id, x.info, info)
			case op == 20:
				x := xs[rng.IntN(len(xs))]
				as := addrs(s)
				if len(as) == 0 {
					break
				}
				a := as[rng.IntN(len(as))]
				if addressedAt[token(x.info)] == nil {
					addressedAt[token(x.info)] = map[string]bool{}
				}
				addressedAt[token(x.info)][token(a.street)] = true
				s.update("gnuhealth_patient", x.id, 1, map[string]any{"current_address": a.id})
				logf("%d: origin %d gives patient %d (%s) address %d (%s)", step, s.origin, x.id, x.info, a.id, a.street)
			default:
				x := xs[rng.IntN(len(xs))]
				s.exec(`DELETE FROM gnuhealth_patient WHERE id = ?`, x.id)
				patientDeleted[token(x.info)] = true
				logf("%d: origin %d deletes patient %d (%s)", step, s.origin, x.id, x.info)
			}
		case op >= 14:
			as := addrs(s)
			if len(as) == 0 {
				break
			}
			a := as[rng.IntN(len(as))]
			switch {
			case op == 14:
				street := fmt.Sprintf("%s.%d", token(a.street), step)
				s.update("party_address", a.id, 1, map[string]any{"street": street})
				logf("%d: origin %d edits address %d (%s) to %s", step, s.origin, a.id, a.street, street)
			case op == 15:
				s.exec(`DELETE FROM party_address WHERE id = ?`, a.id)
				placeDeleted[token(a.street)] = true
				logf("%d: origin %d deletes address %d (%s)", step, s.origin, a.id, a.street)
			default:
				r := have[rng.IntN(len(have))]
				s.update("party_address", a.id, 1, map[string]any{"party": r.id})
				ownedBy[token(a.street)][token(r.name)] = true
				logf("%d: origin %d moves address %d (%s of %s) to %d (%s %s)", step, s.origin, a.id, a.street, a.owner, r.id, r.code, r.name)
			}
		case op == 6 || op == 7:
			logf("%d: origin %d drains", step, s.origin)
			s.drain()
		case op == 8 || op == 9:
			from := sites[rng.IntN(len(sites))]
			if from != s {
				logf("%d: origin %d drains, origin %d receives its ledger", step, from.origin, s.origin)
				from.drain()
				s.receive(from)
			}
		default:
			logf("%d: origin %d drains and projects", step, s.origin)
			s.drain()
			s.project()
		}
	}
	// A full exchange, twice: the second finds nothing new.
	for range 2 {
		exchangeAll(sites...)
	}
	logf("full exchange")

	var first, firstPlaces, firstPatients, firstVisits, firstNotes string
	var firstParked []string
	for _, s := range sites {
		cs, err := s.proj.Conflicts(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		moves := slices.ContainsFunc(cs, func(c projections.Conflict) bool { return c.Reason == merge.ConcurrentMove.String() })
		seen := map[string]string{}
		var shown []string
		for _, r := range rows(s) {
			shown = append(shown, r.code+" "+r.name)
			if other, dup := seen[token(r.name)]; dup && (len(recodedAt[token(r.name)]) < 2 || !moves) {
				t.Fatalf("origin %d shows %s twice: as %s and as %s %s (recoded at %v; conflicts %v)", s.origin, token(r.name), other, r.code, r.name, recodedAt[token(r.name)], cs)
			}
			seen[token(r.name)] = r.code + " " + r.name
		}
		slices.Sort(shown)
		if first == "" {
			first = strings.Join(shown, ", ")
		} else if got := strings.Join(shown, ", "); got != first {
			t.Fatalf("origin %d holds %s; origin 1 holds %s", s.origin, got, first)
		}
		for p := 1; p <= persons; p++ {
			if tok := fmt.Sprintf("P%d", p); !deleted[tok] && seen[tok] == "" {
				t.Fatalf("origin %d lost %s, whom nobody deleted (it holds %s)", s.origin, tok, first)
			}
		}
		var placed []string
		at := map[string]bool{}
		for _, a := range addrs(s) {
			tok := token(a.street)
			// With the owner's code: a person whose code two sites
			// corrected at once shows twice (a known gap, listed as a
			// conflict), and every site holds the address on one copy.
			placed = append(placed, a.street+" of "+token(a.owner)+" "+a.code)
			if at[tok] {
				t.Fatalf("origin %d shows address %s twice", s.origin, tok)
			}
			at[tok] = true
			if !ownedBy[tok][token(a.owner)] {
				t.Fatalf("origin %d shows address %s as %s's, which no user attached it to (users attached it to %v)", s.origin, a.street, a.owner, ownedBy[tok])
			}
		}
		slices.Sort(placed)
		if firstPlaces == "" && s == sites[0] {
			firstPlaces = strings.Join(placed, ", ")
		} else if got := strings.Join(placed, ", "); got != firstPlaces {
			t.Fatalf("origin %d holds addresses %s; origin 1 holds %s", s.origin, got, firstPlaces)
		}
		for tok, owners := range ownedBy {
			kept := !placeDeleted[tok]
			for p := range owners {
				kept = kept && !deleted[p]
			}
			if kept && !at[tok] {
				t.Fatalf("origin %d lost address %s of %v, which nobody deleted (it holds %s)", s.origin, tok, owners, firstPlaces)
			}
		}
		var notes []string
		shownEval := map[string]bool{}
		for _, e := range evals(s) {
			tok := token(e.code)
			notes = append(notes, e.code+" of "+e.visit+" of "+token(e.whom)+" "+e.whomCode)
			if shownEval[tok] {
				t.Fatalf("origin %d shows evaluation %s twice", s.origin, tok)
			}
			shownEval[tok] = true
			if e.visit != "" && token(e.visit) != evalOf[tok] {
				t.Fatalf("origin %d shows evaluation %s on appointment %s; it was made for %s", s.origin, e.code, e.visit, evalOf[tok])
			}
			if e.whom != "" && token(e.whom) != evalFor[tok] {
				t.Fatalf("origin %d shows evaluation %s as %s's; it was made for %s", s.origin, e.code, e.whom, evalFor[tok])
			}
		}
		slices.Sort(notes)
		if s == sites[0] {
			firstNotes = strings.Join(notes, ", ")
		} else if got := strings.Join(notes, ", "); got != firstNotes {
			t.Fatalf("origin %d holds evaluations %s; origin 1 holds %s", s.origin, got, firstNotes)
		}
		for tok := range evalOf {
			if !evalDeleted[tok] && !shownEval[tok] {
				t.Fatalf("origin %d lost evaluation %s, which nobody deleted (it holds %s)", s.origin, tok, firstNotes)
			}
		}
		var visits []string
		kept := map[string]bool{}
		for _, a := range appts(s) {
			tok := token(a.comment)
			visits = append(visits, a.comment+" of "+token(a.whom)+" "+a.code)
			if kept[tok] {
				t.Fatalf("origin %d shows appointment %s twice", s.origin, tok)
			}
			kept[tok] = true
			if a.whom != "" && !bookedFor[tok][token(a.whom)] {
				t.Fatalf("origin %d shows appointment %s as %s's; users booked it for %v", s.origin, a.comment, a.whom, bookedFor[tok])
			}
		}
		slices.Sort(visits)
		if s == sites[0] {
			firstVisits = strings.Join(visits, ", ")
		} else if got := strings.Join(visits, ", "); got != firstVisits {
			t.Fatalf("origin %d holds appointments %s; origin 1 holds %s", s.origin, got, firstVisits)
		}
		for tok := range bookedFor {
			if !cancelled[tok] && !kept[tok] {
				t.Fatalf("origin %d lost appointment %s, which nobody cancelled (it holds %s)", s.origin, tok, firstVisits)
			}
		}
		var registered []string
		held := map[string]bool{}
		for _, x := range pats(s) {
			tok := token(x.info)
			registered = append(registered, x.info+" of "+token(x.owner)+" at "+x.address)
			if held[tok] && (len(recodedAt[registeredFor[tok]]) < 2 || !moves) {
				// Its person shows twice after two concurrent corrections
				// of their code, and so does the patient record.
				t.Fatalf("origin %d shows patient %s twice", s.origin, tok)
			}
			held[tok] = true
			if registeredFor[tok] != token(x.owner) {
				t.Fatalf("origin %d shows patient %s as %s's; users registered it for %s", s.origin, x.info, x.owner, registeredFor[tok])
			}
			// Two registrations of one person at two sites are one
			// record: the address may be one a user gave the other.
			given := map[string]bool{}
			for other, p := range registeredFor {
				if p == registeredFor[tok] {
					maps.Copy(given, addressedAt[other])
				}
			}
			if x.address != "" && !given[token(x.address)] {
				t.Fatalf("origin %d gives patient %s address %s, which no user gave it or another registration of %s (users gave them %v)", s.origin, x.info, x.address, registeredFor[tok], given)
			}
		}
		slices.Sort(registered)
		if s == sites[0] {
			firstPatients = strings.Join(registered, ", ")
		} else if got := strings.Join(registered, ", "); got != firstPatients {
			t.Fatalf("origin %d holds patients %s; origin 1 holds %s (parked there: %v)", s.origin, got, firstPatients, s.parkedList())
		}
		for tok, person := range registeredFor {
			if !deleted[person] && !held[tok] {
				// Two registrations of one person at two sites are one
				// record: only one of them shows, and a delete of either
				// deletes it.
				twin, gone := false, false
				for other, p := range registeredFor {
					twin = twin || (other != tok && p == person && held[other])
					gone = gone || (p == person && patientDeleted[other])
				}
				if !twin && !gone {
					t.Fatalf("origin %d lost patient %s of %s, which nobody deleted (it holds %s)", s.origin, tok, person, firstPatients)
				}
			}
		}
		// An address or patient record added to a person another site
		// deleted meanwhile has no row anywhere (the person's cascade
		// would have taken it, or its restriction refused the delete) and
		// is listed as parked, the same at every site.
		parked := s.parkedList()
		if s == sites[0] {
			firstParked = parked
		} else if !slices.Equal(parked, firstParked) {
			t.Fatalf("origin %d parks %v; origin 1 parks %v", s.origin, parked, firstParked)
		}
		orphans := map[string]bool{} // parked records waiting on a deleted person
		for _, p := range parked {
			model, rest, _ := strings.Cut(p, " ")
			key, _, _ := strings.Cut(rest, ": ")
			if strings.Contains(p, "deleted (waits for party.party ") {
				orphans[model+" "+key] = true
			}
		}
		for _, p := range parked {
			model, rest, _ := strings.Cut(p, " ")
			key, reason, _ := strings.Cut(rest, ": ")
			if _, waits, _ := strings.Cut(reason, "(waits for "); strings.HasPrefix(reason, "optional reference") && orphans[strings.TrimSuffix(waits, ")")] {
				// A patient's current address, of a person deleted
				// elsewhere: the patient shows without it.
				continue
			}
			var tok string
			var orphan, shown bool
			switch model {
			case "party.address":
				tok = token(s.field(model, key, "street"))
				orphan = slices.ContainsFunc(slices.Collect(maps.Keys(ownedBy[tok])), func(p string) bool { return deleted[p] })
				shown = at[tok]
			case "gnuhealth.patient":
				tok = token(s.field(model, key, "critical_info"))
				orphan, shown = deleted[registeredFor[tok]], held[tok]
			}
			if !strings.Contains(reason, "deleted") || !orphan || shown {
				t.Fatalf("origin %d parks %s (%s %s)", s.origin, p, model, tok)
			}
		}
		for _, table := range []string{"rejected", "deferred"} {
			q := `SELECT count(*) FROM ghsync_` + table
			if lay.dialect == models.Postgres {
				q = `SELECT count(*) FROM ghsync.` + table
			}
			if n := s.int(q); n != 0 {
				t.Fatalf("origin %d: %d rows left in %s after a full exchange", s.origin, n, table)
			}
		}
		if n := s.outbox(); n != 0 {
			t.Fatalf("origin %d: %d changes left in the outbox", s.origin, n)
		}
	}
}

// field is a string field of a record as its merge state has it.
func (s *site) field(model, key, field string) string {
	s.t.Helper()
	table := "ghsync_records"
	if s.lay.dialect == models.Postgres {
		table = "ghsync.records"
	}
	var raw []byte
	if err := s.db.QueryRowContext(ctx(s.t), s.q(`SELECT state FROM `+table+` WHERE model = ? AND key = ?`), model, key).Scan(&raw); err != nil {
		s.t.Fatalf("state of %s %s: %v", model, key, err)
	}
	st, err := merge.DecodeState(raw)
	if err != nil {
		s.t.Fatal(err)
	}
	m, _ := s.reg.Lookup(model)
	v, _ := st.Values(m.Policy)[field].AsString()
	return v
}

// parkedList lists the site's parked entries: model, key, reason and the
// record waited for.
func (s *site) parkedList() []string {
	s.t.Helper()
	table := "ghsync_parked"
	if s.lay.dialect == models.Postgres {
		table = "ghsync.parked"
	}
	rs, err := s.db.QueryContext(ctx(s.t), `SELECT model, key, reason, waits_model, waits_key FROM `+table+` ORDER BY model, key, reason, waits_model, waits_key`)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var m, k, r, wm, wk string
		if err := rs.Scan(&m, &k, &r, &wm, &wk); err != nil {
			s.t.Fatal(err)
		}
		out = append(out, m+" "+k+": "+r+" (waits for "+wm+" "+wk+")")
	}
	return out
}
