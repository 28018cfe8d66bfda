-- Landing table operations with the contract's columns only (macros/staging.sql).
{{ staging_select('operations') }}
