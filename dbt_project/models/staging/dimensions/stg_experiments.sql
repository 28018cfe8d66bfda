-- Landing table experiments with the contract's columns only (macros/staging.sql).
{{ staging_select('experiments') }}
