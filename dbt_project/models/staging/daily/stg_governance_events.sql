-- Landing table governance_events with the contract's columns only (macros/staging.sql).
{{ staging_select('governance_events') }}
