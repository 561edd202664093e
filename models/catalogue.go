package models

import (
	"slices"
	"sync"
)

// The catalogue: the GNU Health 4.0 (Tryton 6.0) models ghsync
// synchronises, one file per module family, transcribed from the field
// tables of the reference report (shared/reference/gnuhealth-sync-
// reference.md, section B). Each declaration lists the stored fields in
// the report's order; the comment above it repeats the report's sync
// recommendation and names the One2Many and Function fields, which have
// no column and are therefore not declared.
//
// Decisions that apply across the catalogue:
//
//   - Many2One/Many2Many targets outside the catalogue (res.user,
//     currency.currency, product.template, party.category,
//     gnuhealth.family, gnuhealth.insurance, gnuhealth.dose.unit, ...) are
//     Skipped with the reason, never dropped silently. Where such a field
//     is required, the model's comment says so: the projector cannot
//     create those records on a receiving instance (models check warns).
//   - Reference data preloaded on every instance (country, subdivision)
//     and the instance's own configuration (company, and products, whose
//     required template is not catalogued) are ReferenceData: resolved by
//     key, never replicated.
//   - Coded master data maintained nationally (ICD-10 pathologies,
//     procedures, specialties, occupations, ethnicities, the medicament
//     list, operational areas and sectors, institutions, lifestyle and lab
//     test catalogues) merges CentralWins: a value set by central beats
//     satellite edits of the same field, while a satellite edit stands
//     until central writes that field.
//   - Clinical documents recorded and signed by a professional at one
//     clinic (evaluations and their lines, prescriptions, ECGs,
//     vaccinations, certificates, newborn and obstetric records, inpatient
//     stays, nursing and lab results, SES assessments, injury reports,
//     Pages of Life) are OwnedByOrigin: only the creating instance may
//     change them, so another instance's edit is a reported conflict
//     (merge.NotOwner), not a silent overwrite of a signed record. It
//     also keeps health_crypto's serializer, document_digest and
//     digital_signature coming from one writer. Shared, longitudinal
//     records (party, patient, conditions, medications, appointments,
//     pregnancies, addresses) stay LastWriterWins.
//   - Per-field rules are few: party.party's federation_account is
//     FirstWins (a Federation identifier, never reassigned); every
//     Many2Many is Union.

var (
	gnuHealthOnce sync.Once
	gnuHealth     *Registry
)

// GNUHealth returns the shipped catalogue: the 75 models of the reference
// report's summary table (B.1). It is built and validated once; an
// invalid catalogue is a programming error and panics.
func GNUHealth() *Registry {
	gnuHealthOnce.Do(func() {
		r, err := NewRegistry(catalogue()...)
		if err != nil {
			panic(err)
		}
		gnuHealth = r
	})
	return gnuHealth
}

// catalogue returns fresh copies of every catalogue model.
func catalogue() []*Model {
	return slices.Concat(
		partyModels(),
		masterDataModels(),
		personModels(),
		clinicalModels(),
		pediatricsModels(),
		archivesModels(),
		gynecoModels(),
		inpatientModels(),
		lifestyleModels(),
		nursingModels(),
		socioeconomicsModels(),
		labModels(),
		issModels(),
	)
}
