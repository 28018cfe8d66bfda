-- Landing table calendar with the contract's columns only (macros/staging.sql).
{{ staging_select('calendar') }}
