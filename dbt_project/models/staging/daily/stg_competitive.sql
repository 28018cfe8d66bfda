-- Landing table competitive with the contract's columns only (macros/staging.sql).
{{ staging_select('competitive') }}
