package models

// inpatientModels are health_inpatient's hospital stays (reference B.9),
// all belonging to the hospital that admitted the patient.
func inpatientModels() []*Model {
	return []*Model{
		// gnuhealth.inpatient.registration: UUID. Key: `uuid`. Jamaica: —. One2Many (no column): medications,
		// therapeutic_diets, bed_transfers. Function (not stored): puid.
		Define("gnuhealth.inpatient.registration", "health_inpatient", ByUUID,
			F("name", Char),
			M2O("patient", "gnuhealth.patient").Required(),
			F("admission_type", Selection).Required(),
			F("hospitalization_date", DateTime).Required(),
			F("discharge_date", DateTime).Required(),
			M2O("attending_physician", "gnuhealth.healthprofessional"),
			M2O("operating_physician", "gnuhealth.healthprofessional"),
			M2O("admission_reason", "gnuhealth.pathology"),
			M2O("bed", "gnuhealth.hospital.bed"),
			F("nursing_plan", Text),
			F("nutrition_notes", Text),
			F("discharge_plan", Text),
			F("info", Text),
			F("state", Selection),
			M2O("discharged_by", "gnuhealth.healthprofessional"),
			F("discharge_reason", Selection),
			M2O("discharge_dx", "gnuhealth.pathology"),
			M2O("institution", "gnuhealth.institution"),
			OwnedByOrigin(),
		),
		// gnuhealth.bed.transfer: UUID. Key: `uuid`. Jamaica: —.
		Define("gnuhealth.bed.transfer", "health_inpatient", ByUUID,
			M2O("name", "gnuhealth.inpatient.registration"),
			F("transfer_date", DateTime),
			M2O("bed_from", "gnuhealth.hospital.bed"),
			M2O("bed_to", "gnuhealth.hospital.bed"),
			F("reason", Char),
			OwnedByOrigin(),
		),
		// gnuhealth.inpatient.medication: UUID. Key: `uuid`. Jamaica: —. One2Many (no column): admin_times,
		// log_history.
		//
		// PROBLEM: dose_unit, route and form are REQUIRED but point at lookups
		// that are not catalogued (gnuhealth.dose.unit, .drug.route,
		// .drug.form), so the projector cannot create these rows on another
		// instance (NOT NULL columns it cannot fill; models check warns). To
		// synchronise inpatient medication, add those lookups as ReferenceData
		// keyed by their DB-unique name/code.
		Define("gnuhealth.inpatient.medication", "health_inpatient", ByUUID,
			M2O("name", "gnuhealth.inpatient.registration"),
			M2O("medicament", "gnuhealth.medicament").Required(),
			M2O("indication", "gnuhealth.pathology"),
			F("start_treatment", DateTime).Required(),
			F("end_treatment", DateTime),
			F("dose", Float).Required(),
			Skip("dose_unit", "target gnuhealth.dose.unit is not in the catalogue (seeded reference data, DB-unique name); REQUIRED: rows cannot be created on another instance"),
			Skip("route", "target gnuhealth.drug.route is not in the catalogue (seeded reference data, DB-unique code); REQUIRED: rows cannot be created on another instance"),
			Skip("form", "target gnuhealth.drug.form is not in the catalogue (seeded reference data, DB-unique code); REQUIRED: rows cannot be created on another instance"),
			F("qty", Integer).Required(),
			Skip("common_dosage", "target gnuhealth.medication.dosage is not in the catalogue (seeded reference data, DB-unique code)"),
			F("frequency", Integer),
			F("frequency_unit", Selection),
			F("frequency_prn", Boolean),
			F("is_active", Boolean),
			F("discontinued", Boolean),
			F("course_completed", Boolean),
			F("discontinued_reason", Char),
			F("adverse_reaction", Text),
			OwnedByOrigin(),
		),
		// gnuhealth.inpatient.diet: UUID. Key: `uuid`. Jamaica: —.
		//
		// PROBLEM: diet is REQUIRED and points at gnuhealth.diet.therapeutic,
		// which is not catalogued: these rows cannot be created elsewhere
		// until it is added as ReferenceData keyed by its DB-unique code.
		Define("gnuhealth.inpatient.diet", "health_inpatient", ByUUID,
			M2O("name", "gnuhealth.inpatient.registration"),
			Skip("diet", "target gnuhealth.diet.therapeutic is not in the catalogue (reference data, DB-unique code); REQUIRED: rows cannot be created on another instance"),
			F("remarks", Text),
			OwnedByOrigin(),
		),
		// gnuhealth.inpatient.meal.order: UUID. Key: `uuid`. Jamaica: —. One2Many (no column): meal_item.
		Define("gnuhealth.inpatient.meal.order", "health_inpatient", ByUUID,
			M2O("name", "gnuhealth.inpatient.registration").Required(),
			F("mealtime", Selection).Required(),
			F("meal_order", Char),
			M2O("health_professional", "gnuhealth.healthprofessional"),
			F("remarks", Text),
			F("meal_warning", Boolean),
			F("meal_warning_ack", Boolean),
			F("order_date", DateTime).Required(),
			F("state", Selection),
			OwnedByOrigin(),
		),
	}
}
