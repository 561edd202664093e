package models

import "github.com/ghsync/ghsync/merge"

// masterDataModels are the health module's reference and master data
// (reference B.3): institutions and their structure, geography,
// professionals, coded catalogues (ICD-10, procedures, occupations...).
func masterDataModels() []*Model {
	return []*Model{
		// gnuhealth.institution: unique-key. Key: `code`. Jamaica: SyncMixin `code`, none. One2Many (no
		// column): specialties, operational_sectors.
		Define("gnuhealth.institution", "health", Key("code"),
			M2O("name", "party.party").Required(),
			F("code", Char).Required(),
			F("picture", Binary),
			F("institution_type", Selection).Required(),
			F("beds", Integer),
			F("operating_room", Boolean),
			F("or_number", Integer),
			F("public_level", Selection).Required(),
			F("teaching", Boolean),
			F("heliport", Boolean),
			F("trauma_center", Boolean),
			F("trauma_level", Selection),
			F("extra_info", Text),
			M2O("main_specialty", "gnuhealth.institution.specialties"),
			DefaultRule(merge.CentralWins),
		),
		// gnuhealth.institution.specialties: composite unique-key. Key: (institution.code, specialty.code).
		// Jamaica: SyncUUIDMixin, update.
		Define("gnuhealth.institution.specialties", "health", Key("name", "specialty"),
			M2O("name", "gnuhealth.institution").Required(),
			M2O("specialty", "gnuhealth.specialty").Required(),
		),
		// gnuhealth.institution.operationalsector: composite unique-key. Key: (institution.code,
		// operational_sector key). Jamaica: SyncMixin `sync_code` (Jamaica-added), update.
		Define("gnuhealth.institution.operationalsector", "health", Key("name", "operational_sector"),
			M2O("name", "gnuhealth.institution").Required(),
			M2O("operational_sector", "gnuhealth.operational_sector").Required(),
		),
		// gnuhealth.operational_area: unique-key. Key: `name`. Jamaica: SyncMixin `name`, none. One2Many (no
		// column): operational_sector.
		Define("gnuhealth.operational_area", "health", Key("name"),
			F("name", Char).Required(),
			F("info", Text),
			DefaultRule(merge.CentralWins),
		),
		// gnuhealth.operational_sector: composite unique-key. Key: (`name`, operational_area.name). Jamaica:
		// SyncMixin `name`, none.
		//
		// operational_area is optional in Tryton but part of the key: a
		// sector without an area has no network identity and cannot be
		// synchronised.
		Define("gnuhealth.operational_sector", "health", Key("name", "operational_area"),
			F("name", Char).Required(),
			M2O("operational_area", "gnuhealth.operational_area"),
			F("info", Text),
			DefaultRule(merge.CentralWins),
		),
		// gnuhealth.du: UUID. Key: `uuid` (alt: `name`, DB-unique). Jamaica: SyncUUIDMixin, push_update
		// (earlier SyncMixin `name`). One2Many (no column): members. Function (not stored): address_repr.
		Define("gnuhealth.du", "health", ByUUID,
			F("name", Char).Required(),
			F("desc", Char),
			F("address_street", Char),
			F("address_street_number", Char),
			F("address_street_bis", Char),
			F("address_district", Char),
			F("address_municipality", Char),
			F("address_city", Char),
			F("address_zip", Char),
			M2O("address_country", "country.country"),
			M2O("address_subdivision", "country.subdivision"),
			M2O("operational_sector", "gnuhealth.operational_sector"),
			F("picture", Binary),
			F("latitude", Numeric),
			F("longitude", Numeric),
			F("altitude", Integer),
			F("urladdr", Char),
			F("dwelling", Selection),
			F("materials", Selection),
			F("roof_type", Selection),
			F("total_surface", Integer),
			F("bedrooms", Integer),
			F("bathrooms", Integer),
			F("housing", Selection),
			F("sewers", Boolean),
			F("water", Boolean),
			F("trash", Boolean),
			F("electricity", Boolean),
			F("gas", Boolean),
			F("telephone", Boolean),
			F("television", Boolean),
			F("internet", Boolean),
		),
		// gnuhealth.specialty: unique-key. Key: `code`. Jamaica: SyncMixin `code`, none.
		Define("gnuhealth.specialty", "health", Key("code"),
			F("name", Char).Required(),
			F("code", Char).Required(),
			DefaultRule(merge.CentralWins),
		),
		// gnuhealth.healthprofessional: unique-key. Key: via `name` → party.code (alt: `code` = licence id,
		// DB-unique). Jamaica: SyncMixin `puid`, full. One2Many (no column): specialties. Function (not
		// stored): puid.
		Define("gnuhealth.healthprofessional", "health", Key("name"),
			M2O("name", "party.party").Required(),
			M2O("institution", "gnuhealth.institution"),
			F("code", Char),
			F("info", Text),
			F("active", Boolean),
			M2O("main_specialty", "gnuhealth.hp_specialty"),
		),
		// gnuhealth.hp_specialty: composite unique-key. Key: (healthprof key, specialty.code). Jamaica:
		// SyncUUIDMixin.
		Define("gnuhealth.hp_specialty", "health", Key("name", "specialty"),
			M2O("name", "gnuhealth.healthprofessional").Required(),
			M2O("specialty", "gnuhealth.specialty").Required(),
		),
		// gnuhealth.hospital.unit: composite unique-key. Key: (institution.code, `code`). Jamaica:
		// SyncUUIDMixin, update.
		Define("gnuhealth.hospital.unit", "health", Key("institution", "code"),
			F("name", Char).Required(),
			M2O("institution", "gnuhealth.institution").Required(),
			F("code", Char).Required(),
			F("extra_info", Text),
		),
		// gnuhealth.hospital.ward: composite unique-key. Key: (institution.code, `name`). Jamaica:
		// SyncUUIDMixin, update.
		Define("gnuhealth.hospital.ward", "health", Key("institution", "name"),
			F("name", Char).Required(),
			M2O("institution", "gnuhealth.institution").Required(),
			Skip("building", "target gnuhealth.hospital.building is not in the catalogue"),
			F("floor", Integer),
			M2O("unit", "gnuhealth.hospital.unit"),
			F("private", Boolean),
			F("bio_hazard", Boolean),
			F("number_of_beds", Integer),
			F("telephone", Boolean),
			F("ac", Boolean),
			F("private_bathroom", Boolean),
			F("guest_sofa", Boolean),
			F("tv", Boolean),
			F("internet", Boolean),
			F("refrigerator", Boolean),
			F("microwave", Boolean),
			F("gender", Selection).Required(),
			F("state", Selection),
			F("extra_info", Text),
		),
		// gnuhealth.hospital.bed: UUID. Key: `uuid` (DB-unique is (name→product, institution)). Jamaica: —.
		Define("gnuhealth.hospital.bed", "health", ByUUID,
			M2O("name", "product.product").Required(),
			M2O("institution", "gnuhealth.institution").Required(),
			M2O("ward", "gnuhealth.hospital.ward"),
			F("bed_type", Selection).Required(),
			F("telephone_number", Char),
			F("extra_info", Text),
			F("state", Selection),
		),
		// gnuhealth.pathology.category: unique-key. Key: `name`. Jamaica: SyncMixin `name`, update. One2Many
		// (no column): childs.
		Define("gnuhealth.pathology.category", "health", Key("name"),
			F("name", Char).Required(),
			M2O("parent", "gnuhealth.pathology.category"),
			DefaultRule(merge.CentralWins),
		),
		// gnuhealth.pathology.group: unique-key. Key: `code`. Jamaica: SyncMixin `code`, update. One2Many (no
		// column): members.
		Define("gnuhealth.pathology.group", "health", Key("code"),
			F("name", Char).Required(),
			F("code", Char).Required(),
			F("desc", Char).Required(),
			F("info", Text),
			DefaultRule(merge.CentralWins),
		),
		// gnuhealth.pathology: unique-key. Key: `code` (ICD-10 code, e.g. `A00.0`). Jamaica: SyncMixin `code`,
		// none. One2Many (no column): groups.
		Define("gnuhealth.pathology", "health", Key("code"),
			F("name", Char).Required(),
			F("code", Char).Required(),
			M2O("category", "gnuhealth.pathology.category"),
			F("chromosome", Char),
			F("protein", Char),
			F("gene", Char),
			F("info", Text),
			F("uri", Char),
			F("active", Boolean),
			DefaultRule(merge.CentralWins),
		),
		// gnuhealth.disease_group.members: composite unique-key. Key: (pathology.code, disease_group.code).
		// Jamaica: SyncMixin on a Function `code` = `<pathology code>-.-<group code>`, update.
		//
		// name (the pathology) is optional in Tryton but part of the key; no
		// DB unique constraint backs the key (models check counts duplicates).
		Define("gnuhealth.disease_group.members", "health", Key("name", "disease_group"),
			M2O("name", "gnuhealth.pathology"),
			M2O("disease_group", "gnuhealth.pathology.group").Required(),
			DefaultRule(merge.CentralWins),
		),
		// gnuhealth.procedure: unique-key. Key: `name` (the procedure code). Jamaica: SyncMixin `name`, none.
		// No DB unique constraint: Jamaica hit duplicate codes (models check counts them).
		Define("gnuhealth.procedure", "health", Key("name"),
			F("name", Char).Required(),
			F("description", Char),
			DefaultRule(merge.CentralWins),
		),
		// gnuhealth.occupation: unique-key. Key: `code`. Jamaica: SyncMixin `code`, none.
		Define("gnuhealth.occupation", "health", Key("code"),
			F("name", Char).Required(),
			F("code", Char).Required(),
			DefaultRule(merge.CentralWins),
		),
		// gnuhealth.ethnicity: unique-key. Key: `code`. Jamaica: SyncMixin `code`, none.
		Define("gnuhealth.ethnicity", "health", Key("code"),
			F("name", Char).Required(),
			F("code", Char).Required(),
			F("notes", Char),
			DefaultRule(merge.CentralWins),
		),
		// gnuhealth.medicament: UUID or via product. Key: `name` → product.product key. Jamaica: not synced.
		// Function (not stored): pregnancy_cat_icon.
		//
		// Keyed via its product (no DB constraint; one medicament per product
		// in practice): gnuhealth.vaccination's REQUIRED vaccine points here,
		// which is what broke the 2014 engine, so medicaments must be
		// resolvable by a natural key. Its unit/route/form lookups are not
		// catalogued.
		Define("gnuhealth.medicament", "health", Key("name"),
			M2O("name", "product.product").Required(),
			F("active_component", Char),
			Skip("category", "target gnuhealth.medicament.category is not in the catalogue"),
			F("therapeutic_action", Char),
			F("composition", Text),
			F("indications", Text),
			F("strength", Float),
			Skip("unit", "target gnuhealth.dose.unit is not in the catalogue (seeded reference data, DB-unique name)"),
			Skip("route", "target gnuhealth.drug.route is not in the catalogue (seeded reference data, DB-unique code)"),
			Skip("form", "target gnuhealth.drug.form is not in the catalogue (seeded reference data, DB-unique code)"),
			F("sol_conc", Float),
			Skip("sol_conc_unit", "target gnuhealth.dose.unit is not in the catalogue (seeded reference data, DB-unique name)"),
			F("sol_vol", Float),
			Skip("sol_vol_unit", "target gnuhealth.dose.unit is not in the catalogue (seeded reference data, DB-unique name)"),
			F("dosage", Text),
			F("overdosage", Text),
			F("pregnancy_warning", Boolean),
			F("pregnancy", Text),
			F("pregnancy_category", Selection),
			F("presentation", Text),
			F("adverse_reaction", Text),
			F("storage", Text),
			F("is_vaccine", Boolean),
			F("notes", Text),
			F("active", Boolean),
			DefaultRule(merge.CentralWins),
		),
	}
}
