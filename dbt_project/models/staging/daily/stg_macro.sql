-- Landing table macro with the contract's columns only (macros/staging.sql).
{{ staging_select('macro') }}
