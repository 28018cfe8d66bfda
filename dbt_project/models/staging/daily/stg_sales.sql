-- Landing table sales with the contract's columns only (macros/staging.sql).
{{ staging_select('sales') }}
