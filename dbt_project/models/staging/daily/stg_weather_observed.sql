-- Landing table weather_observed with the contract's columns only (macros/staging.sql).
{{ staging_select('weather_observed') }}
