package projections

import (
	"testing"

	"github.com/ghsync/ghsync/models"
)

// TestOrderPutsTargetsFirst: every model is ranked once; the target of a
// required Many2One comes before its model, as in the registry; an
// optional one does too unless a cycle forbids it, and in GNU Health's
// catalogue the references a clinic writes most (an appointment's or an
// evaluation's patient) are not in one.
func TestOrderPutsTargetsFirst(t *testing.T) {
	reg := models.GNUHealth()
	p := &Projector{reg: reg}
	rank := p.order()
	if len(rank) != reg.Len() {
		t.Fatalf("ranked %d models, the registry has %d", len(rank), reg.Len())
	}
	seen := map[int]string{}
	for name, r := range rank {
		if other, dup := seen[r]; dup || r < 0 || r >= reg.Len() {
			t.Fatalf("rank %d given to %s (and %q)", r, name, other)
		}
		seen[r] = name
	}
	kept, broken := 0, 0
	for _, m := range reg.Models() {
		for _, f := range m.Fields {
			tr, ok := rank[f.Target]
			if f.Type != models.Many2One || !ok || f.Target == m.Name {
				continue
			}
			switch {
			case tr < rank[m.Name]:
				kept++
			case f.Required:
				t.Errorf("%s.%s: required target %s ranked after it", m.Name, f.Name, f.Target)
			default:
				broken++
			}
		}
	}
	t.Logf("%d references to earlier-ranked targets, %d optional ones left to a cycle", kept, broken)
	for _, ref := range [][2]string{
		{"gnuhealth.appointment", "gnuhealth.patient"},
		{"gnuhealth.patient.evaluation", "gnuhealth.patient"},
		{"gnuhealth.patient.evaluation", "gnuhealth.appointment"},
	} {
		if rank[ref[1]] >= rank[ref[0]] {
			t.Errorf("%s (rank %d) is not written before %s (rank %d), which refers to it", ref[1], rank[ref[1]], ref[0], rank[ref[0]])
		}
	}
}
