package models

import "github.com/ghsync/ghsync/merge"

// partyModels are Tryton's base models (reference B.2): party, country,
// company, product.
func partyModels() []*Model {
	return []*Model{
		// party.party: unique-key. Key: `code`. Jamaica: SyncMixin `code`, full (`ref` at first). One2Many (no
		// column): langs, identifiers, addresses, contact_mechanisms, person_names, alternative_ids,
		// insurance, insurance_plan_ids. Function (not stored): code_readonly, tax_identifier, full_name,
		// phone, mobile, fax, email, website, distance, age, du_address, dod, mother, father.
		//
		// code is the network key: GNU Health fills it with "<uuid4>-<name>";
		// plain Tryton numbers it per instance ("1", "2", ...), which collides
		// across instances (models check warns).
		Define("party.party", "party", Key("code"),
			F("name", Char),
			F("code", Char).Required(),
			Skip("categories", "Many2Many to party.category (table party_category_rel): party.category is not in the catalogue; categories are instance-local labels"),
			M2O("replaced_by", "party.party"),
			F("active", Boolean),
			Ext("health",
				F("name_representation", Selection),
				F("activation_date", Date),
				// A Federation identifier: once assigned it must not change,
				// so a concurrent second assignment loses (and is reported).
				F("federation_account", Char).Rule(merge.FirstWins),
				F("ref", Char),
				F("unidentified", Boolean),
				F("is_person", Boolean),
				F("is_patient", Boolean),
				F("is_healthprof", Boolean),
				F("is_institution", Boolean),
				F("is_insurance_company", Boolean),
				F("is_pharmacy", Boolean),
				F("lastname", Char),
				F("dob", Date),
				F("gender", Selection),
				F("photo", Binary),
				M2O("ethnic_group", "gnuhealth.ethnicity"),
				F("marital_status", Selection),
				M2O("citizenship", "country.country"),
				M2O("residence", "country.country"),
				F("alternative_identification", Boolean),
				Skip("internal_user", "target res.user is instance-local: each instance has its own user accounts"),
				F("insurance_company_type", Selection),
				M2O("du", "gnuhealth.du"),
				M2O("birth_certificate", "gnuhealth.birth_certificate"),
				F("deceased", Boolean),
				M2O("death_certificate", "gnuhealth.death_certificate"),
				F("fed_country", Char),
			),
			Ext("health_federation",
				Skip("fsync", "health_federation's local bookkeeping flag (this instance's Federation sync state)"),
			),
			Ext("health_socioeconomics",
				M2O("occupation", "gnuhealth.occupation"),
				F("education", Selection),
			),
		),
		// party.address: UUID. Key: `uuid`. Jamaica: SyncUUIDMixin. Function (not stored): subdivision_types,
		// full_address.
		Define("party.address", "party", ByUUID,
			M2O("party", "party.party").Required().OnDelete(Cascade),
			F("party_name", Char),
			F("name", Char),
			F("street", Text),
			F("postal_code", Char),
			F("city", Char),
			M2O("country", "country.country"),
			M2O("subdivision", "country.subdivision"),
			F("active", Boolean),
			Ext("health",
				F("relationship", Char),
				M2O("relative_id", "party.party"),
				F("is_school", Boolean),
				F("is_work", Boolean),
			),
		),
		// party.contact_mechanism: UUID. Key: `uuid`. Jamaica: SyncUUIDMixin (2016). One2Many (no column):
		// languages. Function (not stored): email, website, skype, sip, other_value, url.
		Define("party.contact_mechanism", "party", ByUUID,
			F("type", Selection).Required(),
			F("value", Char),
			F("value_compact", Char),
			F("name", Char),
			F("comment", Text),
			M2O("party", "party.party").Required().OnDelete(Cascade),
			F("active", Boolean),
			Ext("health",
				F("emergency", Boolean),
				F("remarks", Char),
			),
		),
		// country.country: reference data (preloaded; unique-key only to resolve references). Key: `code` (ISO
		// 3166-1 alpha-2). Jamaica: SyncMixin `code`, none. One2Many (no column): subdivisions.
		Define("country.country", "country", Key("code"),
			F("name", Char).Required(),
			F("code", Char).Size(2),
			F("code3", Char).Size(3),
			F("code_numeric", Char),
			F("active", Boolean),
			ReferenceData(), DefaultRule(merge.CentralWins),
		),
		// country.subdivision: reference data (preloaded; unique-key only to resolve references). Key: `code`
		// (ISO 3166-2). Jamaica: SyncMixin `code`, none.
		Define("country.subdivision", "country", Key("code"),
			M2O("country", "country.country").Required(),
			F("name", Char).Required(),
			F("code", Char).Required(),
			F("type", Selection).Required(),
			M2O("parent", "country.subdivision"),
			F("active", Boolean),
			ReferenceData(), DefaultRule(merge.CentralWins),
		),
		// company.company: not synced / via party. Key: `party` → party.code (derived). Jamaica: not synced.
		// One2Many (no column): employees.
		//
		// Kept instance-local, as the report recommends: each instance
		// configures its own company (its party, currency, timezone), so it
		// is ReferenceData, resolved through its party's code and never
		// replicated. Its required currency is not catalogued.
		Define("company.company", "company", Key("party"),
			M2O("party", "party.party").Required().OnDelete(Cascade),
			F("header", Text),
			F("footer", Text),
			Skip("currency", "target currency.currency is not in the catalogue: each instance configures its own company (REQUIRED)"),
			F("timezone", Selection),
			ReferenceData(), DefaultRule(merge.CentralWins),
		),
		// product.product: unique-key if coded, else UUID. Key: `code` (when set). Jamaica: not synced.
		// One2Many (no column): identifiers, cost_prices. Function (not stored): code_readonly, prefix_code,
		// list_price_uom, cost_price_uom.
		//
		// Keyed by code (medicaments, vaccines, beds and services point at
		// products, so they must be resolvable by a natural key), and
		// ReferenceData: the REQUIRED template (name, type, unit of measure,
		// prices) is product.template, which is not catalogued, so a product
		// cannot be created by the projector. Products must be loaded on
		// every instance with the same codes; a product without a code
		// cannot be referenced across instances.
		Define("product.product", "product", Key("code"),
			Skip("template", "target product.template is not in the catalogue: products are preloaded on every instance, not replicated (REQUIRED)"),
			F("suffix_code", Char),
			F("code", Char),
			F("description", Text),
			F("active", Boolean),
			Ext("health",
				F("is_medicament", Boolean),
				F("is_medical_supply", Boolean),
				F("is_vaccine", Boolean),
				F("is_bed", Boolean),
				F("is_insurance_plan", Boolean),
			),
			ReferenceData(), DefaultRule(merge.CentralWins),
		),
	}
}
