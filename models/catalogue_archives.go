package models

// archivesModels is health_archives' paper record tracking (reference
// B.7). Borrowing and returning is shared work, so it stays
// LastWriterWins.
func archivesModels() []*Model {
	return []*Model{
		// gnuhealth.paper_archive: UUID. Key: `uuid` (alt: `patient` DB-unique; `legacy` DB-unique). Jamaica:
		// —. Function (not stored): identification_code.
		Define("gnuhealth.paper_archive", "health_archives", ByUUID,
			M2O("patient", "gnuhealth.patient").Required(),
			F("legacy", Char),
			M2O("location", "gnuhealth.hospital.unit").Required(),
			F("hc_status", Selection).Required(),
			M2O("current_location", "gnuhealth.hospital.unit"),
			M2O("requested_by", "party.party"),
			F("request_date", DateTime),
			F("return_date", DateTime),
			F("comments", Char),
		),
	}
}
