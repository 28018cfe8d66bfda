-- Landing table creative with the contract's columns only (macros/staging.sql).
{{ staging_select('creative') }}
