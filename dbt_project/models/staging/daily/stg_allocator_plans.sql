-- Landing table allocator_plans with the contract's columns only (macros/staging.sql).
{{ staging_select('allocator_plans') }}
