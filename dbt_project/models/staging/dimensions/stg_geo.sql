-- Landing table geo with the contract's columns only (macros/staging.sql).
{{ staging_select('geo') }}
