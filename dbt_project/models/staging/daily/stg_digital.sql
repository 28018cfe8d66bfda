-- Landing table digital with the contract's columns only (macros/staging.sql).
{{ staging_select('digital') }}
