package models_test

import (
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ghsync/ghsync/ledger"
	"github.com/ghsync/ghsync/merge"
	"github.com/ghsync/ghsync/models"
)

// b1 is the summary table of the reference report (section B.1): the
// catalogue must hold exactly these models.
var b1 = []string{
	"party.party",
	"party.address",
	"party.contact_mechanism",
	"country.country",
	"country.subdivision",
	"company.company",
	"product.product",
	"gnuhealth.institution",
	"gnuhealth.institution.specialties",
	"gnuhealth.institution.operationalsector",
	"gnuhealth.operational_area",
	"gnuhealth.operational_sector",
	"gnuhealth.du",
	"gnuhealth.specialty",
	"gnuhealth.healthprofessional",
	"gnuhealth.hp_specialty",
	"gnuhealth.hospital.unit",
	"gnuhealth.hospital.ward",
	"gnuhealth.hospital.bed",
	"gnuhealth.pathology.category",
	"gnuhealth.pathology.group",
	"gnuhealth.pathology",
	"gnuhealth.disease_group.members",
	"gnuhealth.procedure",
	"gnuhealth.occupation",
	"gnuhealth.ethnicity",
	"gnuhealth.medicament",
	"gnuhealth.patient",
	"gnuhealth.person_name",
	"gnuhealth.person_alternative_identification",
	"gnuhealth.birth_certificate",
	"gnuhealth.death_certificate",
	"gnuhealth.pol",
	"gnuhealth.appointment",
	"gnuhealth.patient.evaluation",
	"gnuhealth.secondary_condition",
	"gnuhealth.diagnostic_hypothesis",
	"gnuhealth.signs_and_symptoms",
	"gnuhealth.directions",
	"gnuhealth.patient.disease",
	"gnuhealth.vaccination",
	"gnuhealth.patient.medication",
	"gnuhealth.prescription.order",
	"gnuhealth.prescription.line",
	"gnuhealth.patient.ecg",
	"gnuhealth.newborn",
	"gnuhealth.neonatal.apgar",
	"gnuhealth.patient.psc",
	"gnuhealth.paper_archive",
	"gnuhealth.patient.pregnancy",
	"gnuhealth.patient.prenatal.evaluation",
	"gnuhealth.perinatal",
	"gnuhealth.perinatal.monitor",
	"gnuhealth.puerperium.monitor",
	"gnuhealth.patient.menstrual_history",
	"gnuhealth.inpatient.registration",
	"gnuhealth.bed.transfer",
	"gnuhealth.inpatient.medication",
	"gnuhealth.inpatient.diet",
	"gnuhealth.inpatient.meal.order",
	"gnuhealth.patient.cage",
	"gnuhealth.patient.recreational_drugs",
	"gnuhealth.drugs_recreational",
	"gnuhealth.vegetarian_types",
	"gnuhealth.diet.belief",
	"gnuhealth.patient.rounding",
	"gnuhealth.rounding_procedure",
	"gnuhealth.patient.ambulatory_care",
	"gnuhealth.ambulatory_care_procedure",
	"gnuhealth.ses.assessment",
	"gnuhealth.lab",
	"gnuhealth.lab.test.critearea",
	"gnuhealth.patient.lab.test",
	"gnuhealth.lab.test_type",
	"gnuhealth.iss",
}

func TestGNUHealth_ExactlyTheB1Models(t *testing.T) {
	reg := models.GNUHealth()
	if len(b1) != 75 {
		t.Fatalf("the B.1 list has %d rows, want 75", len(b1))
	}
	var got []string
	for _, m := range reg.Models() {
		got = append(got, m.Name)
	}
	want := slices.Clone(b1)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("catalogue models:\n%v\nwant the B.1 list:\n%v", got, want)
	}
	if models.GNUHealth() != reg {
		t.Error("GNUHealth builds a new registry on each call")
	}
}

// Every model comes after the targets of its required Many2Ones and of its
// Many2One key parts, so a projector creating records in this order finds
// them.
func TestGNUHealth_DependencyOrder(t *testing.T) {
	pos := map[string]int{}
	ms := models.GNUHealth().Models()
	for i, m := range ms {
		pos[m.Name] = i
	}
	for _, m := range ms {
		for _, f := range m.Fields {
			if f.Type != models.Many2One || f.Target == m.Name {
				continue
			}
			if (f.Required || slices.Contains(m.Key, f.Name)) && pos[f.Target] > pos[m.Name] {
				t.Errorf("%s (position %d) comes before %s (position %d), the target of its required %s",
					m.Name, pos[m.Name], f.Target, pos[f.Target], f.Name)
			}
		}
	}
}

func TestGNUHealth_Fields(t *testing.T) {
	for _, m := range models.GNUHealth().Models() {
		if m.Table != models.TableName(m.Name) {
			t.Errorf("%s: table %s", m.Name, m.Table)
		}
		for _, f := range m.Fields {
			if f.ValueKind() == ledger.KindNull {
				t.Errorf("%s.%s: type %s has no value kind", m.Name, f.Name, f.Type)
			}
			if f.Module == "" {
				t.Errorf("%s.%s: no module", m.Name, f.Name)
			}
		}
		_, hasActive := m.Field("active")
		if m.Active != hasActive {
			t.Errorf("%s: Active %v, active field %v", m.Name, m.Active, hasActive)
		}
	}
}

func lookup(t *testing.T, name string) *models.Model {
	t.Helper()
	m, ok := models.GNUHealth().Lookup(name)
	if !ok {
		t.Fatalf("%s is not in the catalogue", name)
	}
	return m
}

func field(t *testing.T, m *models.Model, name string) *models.Field {
	t.Helper()
	f, ok := m.Field(name)
	if !ok {
		t.Fatalf("%s has no synchronised field %s", m.Name, name)
	}
	return f
}

func TestGNUHealth_SpotChecks(t *testing.T) {
	party := lookup(t, "party.party")
	if party.Kind != models.UniqueKey || !slices.Equal(party.Key, []string{"code"}) || !party.Active {
		t.Errorf("party.party: %s %v active %v; want unique-key [code], active", party.Kind, party.Key, party.Active)
	}
	if f := field(t, party, "code"); f.Type != models.Char || !f.Required {
		t.Errorf("party.party code: %s required %v", f.Type, f.Required)
	}
	if f := field(t, party, "occupation"); f.Target != "gnuhealth.occupation" || f.Module != "health_socioeconomics" {
		t.Errorf("party.party occupation: → %s from %s", f.Target, f.Module)
	}
	if party.Rule("federation_account") != merge.FirstWins || party.Rule("name") != merge.LastWriterWins {
		t.Error("party.party: federation_account must be first-wins, the rest last-writer-wins")
	}
	for _, skipped := range []string{"internal_user", "categories", "fsync"} {
		if party.NotSynced[skipped] == "" {
			t.Errorf("party.party %s is neither synchronised nor listed in NotSynced", skipped)
		}
	}
	// The Many2Many categories names its relation even though party.category
	// is not catalogued.
	if r := party.NotSynced["categories"]; !strings.Contains(r, "party_category_rel") || !strings.Contains(r, "party.category") {
		t.Errorf("party.party categories: reason %q should name party.category and party_category_rel", r)
	}

	patient := lookup(t, "gnuhealth.patient")
	if patient.Kind != models.UniqueKey || !slices.Equal(patient.Key, []string{"name"}) {
		t.Errorf("gnuhealth.patient: %s %v", patient.Kind, patient.Key)
	}
	if f := field(t, patient, "name"); f.Type != models.Many2One || f.Target != "party.party" || !f.Required || f.OnDelete != models.Restrict {
		t.Errorf("gnuhealth.patient name: %+v; want a required Many2One to party.party, ON DELETE RESTRICT", *f)
	}
	if f := field(t, patient, "smoking"); f.Type != models.Boolean || f.Module != "health_lifestyle" {
		t.Errorf("gnuhealth.patient smoking: %s from %s", f.Type, f.Module)
	}

	ward := lookup(t, "gnuhealth.hospital.ward")
	if ward.Kind != models.CompositeKey || !slices.Equal(ward.Key, []string{"institution", "name"}) {
		t.Errorf("gnuhealth.hospital.ward: %s %v; want composite-key [institution name]", ward.Kind, ward.Key)
	}
	if got := ward.KeyOf("HC1", "Ward/A"); got != "HC1/Ward%2FA" {
		t.Errorf("ward key %q", got)
	}

	appt := lookup(t, "gnuhealth.appointment")
	if appt.Kind != models.UUIDKey || appt.Key != nil || appt.Active {
		t.Errorf("gnuhealth.appointment: %s %v active %v; want uuid, no key, no active column", appt.Kind, appt.Key, appt.Active)
	}
	if appt.Policy.OriginOwned {
		t.Error("appointments are shared (central books, clinics check in): not origin-owned")
	}

	for _, name := range []string{"country.country", "country.subdivision", "company.company", "product.product"} {
		if m := lookup(t, name); !m.Reference {
			t.Errorf("%s is not reference data", name)
		}
	}
	if f := field(t, lookup(t, "country.country"), "code"); f.Size != 2 {
		t.Errorf("country.country code size %d, want 2", f.Size)
	}
	if r := lookup(t, "product.product").NotSynced["template"]; !strings.Contains(r, "REQUIRED") {
		t.Errorf("product.product template: reason %q must flag that it is required", r)
	}

	for _, name := range []string{"gnuhealth.pathology", "gnuhealth.procedure", "gnuhealth.specialty", "gnuhealth.occupation", "gnuhealth.ethnicity"} {
		if m := lookup(t, name); m.Policy.Default != merge.CentralWins {
			t.Errorf("%s merges %s, want central-wins", name, m.Policy.Default)
		}
	}
	for _, name := range []string{"gnuhealth.patient.evaluation", "gnuhealth.prescription.order", "gnuhealth.vaccination", "gnuhealth.lab"} {
		if m := lookup(t, name); !m.Policy.OriginOwned {
			t.Errorf("%s is not origin-owned", name)
		}
	}

	// The 2014 engine could not sync vaccinations: its required vaccine
	// pointed at an unsynchronised model. Here the target is catalogued.
	vacc := lookup(t, "gnuhealth.vaccination")
	if f := field(t, vacc, "vaccine"); f.Target != "gnuhealth.medicament" || !f.Required {
		t.Errorf("gnuhealth.vaccination vaccine: %+v", *f)
	}
	med := lookup(t, "gnuhealth.medicament")
	if med.Kind != models.UniqueKey || field(t, med, "name").Target != "product.product" {
		t.Errorf("gnuhealth.medicament: %s %v", med.Kind, med.Key)
	}

	// Required fields whose targets are not catalogued are named.
	im := lookup(t, "gnuhealth.inpatient.medication")
	for _, f := range []string{"dose_unit", "route", "form"} {
		if !strings.Contains(im.NotSynced[f], "REQUIRED") {
			t.Errorf("gnuhealth.inpatient.medication %s: reason %q must flag that it is required", f, im.NotSynced[f])
		}
	}

	psc := lookup(t, "gnuhealth.patient.psc")
	n := 0
	for _, f := range psc.Fields {
		if strings.HasPrefix(f.Name, "psc_") && f.Type == models.Selection {
			n++
		}
	}
	if n != 35 {
		t.Errorf("gnuhealth.patient.psc has %d psc_* Selection fields, want 35", n)
	}
}
