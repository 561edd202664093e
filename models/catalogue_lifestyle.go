package models

import "github.com/ghsync/ghsync/merge"

// lifestyleModels are health_lifestyle's per-event tables and catalogues
// (reference B.10); most lifestyle data are columns of gnuhealth_patient.
func lifestyleModels() []*Model {
	return []*Model{
		// gnuhealth.patient.cage: UUID. Key: `uuid`. Jamaica: —. Function (not stored): cage_warning_icon.
		Define("gnuhealth.patient.cage", "health_lifestyle", ByUUID,
			M2O("name", "gnuhealth.patient").Required(),
			F("evaluation_date", DateTime),
			F("cage_c", Boolean),
			F("cage_a", Boolean),
			F("cage_g", Boolean),
			F("cage_e", Boolean),
			F("cage_score", Integer),
			OwnedByOrigin(),
		),
		// gnuhealth.patient.recreational_drugs: UUID. Key: `uuid`. Jamaica: —.
		Define("gnuhealth.patient.recreational_drugs", "health_lifestyle", ByUUID,
			M2O("patient", "gnuhealth.patient"),
			M2O("recreational_drug", "gnuhealth.drugs_recreational"),
		),
		// gnuhealth.drugs_recreational: unique-key. Key: `code`. Jamaica: —.
		Define("gnuhealth.drugs_recreational", "health_lifestyle", Key("code"),
			F("name", Char).Required(),
			F("code", Char).Required(),
			F("street_name", Char),
			F("toxicity", Selection),
			F("addiction_level", Selection),
			F("legal_status", Selection),
			F("category", Selection),
			F("withdrawal_level", Integer),
			F("reinforcement_level", Integer),
			F("tolerance_level", Integer),
			F("dependence_level", Integer),
			F("intoxication_level", Integer),
			F("route_oral", Boolean),
			F("route_popping", Boolean),
			F("route_inhaling", Boolean),
			F("route_sniffing", Boolean),
			F("route_injection", Boolean),
			F("dea_schedule_i", Boolean),
			F("dea_schedule_ii", Boolean),
			F("dea_schedule_iii", Boolean),
			F("dea_schedule_iv", Boolean),
			F("dea_schedule_v", Boolean),
			F("info", Text),
			DefaultRule(merge.CentralWins),
		),
		// gnuhealth.vegetarian_types: unique-key. Key: `code`. Jamaica: —.
		Define("gnuhealth.vegetarian_types", "health_lifestyle", Key("code"),
			F("name", Char).Required(),
			F("code", Char).Required(),
			F("desc", Char).Required(),
			DefaultRule(merge.CentralWins),
		),
		// gnuhealth.diet.belief: unique-key. Key: `code`. Jamaica: —.
		Define("gnuhealth.diet.belief", "health_lifestyle", Key("code"),
			F("name", Char).Required(),
			F("code", Char).Required(),
			F("description", Text).Required(),
			DefaultRule(merge.CentralWins),
		),
	}
}
