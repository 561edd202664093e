package models

import "github.com/ghsync/ghsync/merge"

// labModels are health_lab's requests, results and test catalogue
// (reference B.13). A result and its analyte lines belong to the lab that
// produced them; a request is shared between the requesting clinic and
// the lab (LastWriterWins); test types are a central catalogue.
func labModels() []*Model {
	return []*Model{
		// gnuhealth.lab: UUID. Key: `uuid`. Jamaica: —. One2Many (no column): critearea. Function (not
		// stored): analytes_summary.
		Define("gnuhealth.lab", "health_lab", ByUUID,
			F("name", Char),
			M2O("test", "gnuhealth.lab.test_type").Required(),
			M2O("patient", "gnuhealth.patient").Required(),
			M2O("pathologist", "gnuhealth.healthprofessional"),
			M2O("requestor", "gnuhealth.healthprofessional"),
			F("results", Text),
			F("diagnosis", Text),
			F("date_requested", DateTime).Required(),
			F("date_analysis", DateTime),
			F("request_order", Integer),
			M2O("pathology", "gnuhealth.pathology"),
			OwnedByOrigin(),
		),
		// gnuhealth.lab.test.critearea: UUID. Key: `uuid`. Jamaica: —. Function (not stored):
		// lab_warning_icon.
		Define("gnuhealth.lab.test.critearea", "health_lab", ByUUID,
			F("name", Char).Required(),
			F("excluded", Boolean),
			F("result", Float),
			F("result_text", Char),
			F("remarks", Char),
			F("normal_range", Text),
			F("lower_limit", Float),
			F("upper_limit", Float),
			F("warning", Boolean),
			Skip("units", "target gnuhealth.lab.test.units is not in the catalogue"),
			M2O("test_type_id", "gnuhealth.lab.test_type"),
			M2O("gnuhealth_lab_id", "gnuhealth.lab"),
			F("sequence", Integer),
			OwnedByOrigin(),
		),
		// gnuhealth.patient.lab.test: UUID. Key: `uuid`. Jamaica: —.
		Define("gnuhealth.patient.lab.test", "health_lab", ByUUID,
			M2O("name", "gnuhealth.lab.test_type").Required(),
			F("date", DateTime),
			F("state", Selection),
			M2O("patient_id", "gnuhealth.patient").Required(),
			M2O("doctor_id", "gnuhealth.healthprofessional"),
			M2O("context", "gnuhealth.pathology"),
			F("request", Integer),
			F("urgent", Boolean),
		),
		// gnuhealth.lab.test_type: unique-key. Key: `code` (note: the DB constraint named code_uniq is
		// actually on `name`). Jamaica: —. One2Many (no column): critearea.
		Define("gnuhealth.lab.test_type", "health_lab", Key("code"),
			F("name", Char).Required(),
			F("code", Char).Required(),
			F("info", Text),
			M2O("product_id", "product.product").Required(),
			F("active", Boolean),
			DefaultRule(merge.CentralWins),
		),
	}
}
