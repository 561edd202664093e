package models

// socioeconomicsModels is health_socioeconomics' assessment (reference
// B.12); its party and patient fields travel with those records.
func socioeconomicsModels() []*Model {
	return []*Model{
		// gnuhealth.ses.assessment: UUID. Key: `uuid`. Jamaica: —. Function (not stored): gender,
		// computed_age.
		Define("gnuhealth.ses.assessment", "health_socioeconomics", ByUUID,
			M2O("patient", "gnuhealth.patient").Required(),
			F("assessment_date", DateTime),
			M2O("health_professional", "gnuhealth.healthprofessional"),
			M2O("du", "gnuhealth.du"),
			F("ses", Selection),
			F("housing", Selection),
			M2O("occupation", "gnuhealth.occupation"),
			F("income", Selection),
			F("fam_apgar_help", Selection),
			F("fam_apgar_discussion", Selection),
			F("fam_apgar_decisions", Selection),
			F("fam_apgar_timesharing", Selection),
			F("fam_apgar_affection", Selection),
			F("fam_apgar_score", Integer),
			F("education", Selection),
			F("notes", Text),
			F("state", Selection),
			M2O("signed_by", "gnuhealth.healthprofessional"),
			OwnedByOrigin(),
		),
	}
}
