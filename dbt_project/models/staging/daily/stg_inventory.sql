-- Landing table inventory with the contract's columns only (macros/staging.sql).
{{ staging_select('inventory') }}
