-- Landing table products with the contract's columns only (macros/staging.sql).
{{ staging_select('products') }}
