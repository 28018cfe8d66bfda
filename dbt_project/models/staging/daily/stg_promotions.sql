-- Landing table promotions with the contract's columns only (macros/staging.sql).
{{ staging_select('promotions') }}
