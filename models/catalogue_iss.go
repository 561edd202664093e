package models

// issModels is health_iss' Injury Surveillance System record (reference
// B.13), reported by the clinic that saw the injury.
func issModels() []*Model {
	return []*Model{
		// gnuhealth.iss: UUID. Key: `uuid` (alt: `code`, DB-unique, user-entered). Jamaica: Jamaica used its
		// own `health_jamaica_jiss`. Function (not stored): patient, patient_sex, patient_age, complaint.
		Define("gnuhealth.iss", "health_iss", ByUUID,
			M2O("name", "gnuhealth.patient.evaluation").Required(),
			F("injury_date", Date),
			F("registration_date", Date),
			F("code", Char).Required(),
			M2O("operational_sector", "gnuhealth.operational_sector"),
			F("latitude", Numeric),
			F("longitude", Numeric),
			F("urladdr", Char),
			M2O("healthcenter", "gnuhealth.institution"),
			F("injury_type", Selection).Required(),
			F("mva_mode", Selection),
			F("mva_position", Selection),
			F("mva_counterpart", Selection),
			F("safety_gear", Selection),
			F("alcohol", Selection).Required(),
			F("drugs", Selection).Required(),
			F("injury_details", Text),
			F("victim_perpetrator", Selection),
			F("violence_circumstances", Selection),
			F("injury_method", Selection),
			F("place_occurrance", Selection),
			F("disposition", Selection).Required(),
			OwnedByOrigin(),
		),
	}
}
