{#- The window an incremental run reads and rewrites (docs/features.md, "Incrementality").

    min_date/max_date (inclusive ISO dates) are the Dagster partition window (window_bound below). A feature of day d
    looks back up to lookback_days (lags, rolling means) and ahead up to lead_days (pre-event
    flags), so new data for [min_date, max_date] changes every row in
        [min_date - lead_days, max_date + lookback_days]        (the write window)
    and computing those rows needs the inputs in
        [write start - lookback_days, write end + lead_days]   (the read window).
    A run deletes and re-inserts the write window only (delete+insert on the model's key), which
    makes it idempotent. Without vars both windows cover all history. -#}

{% macro window_bound(name, default) -%}
    {#- The run's bound: `--vars '{"min_date": ..., "max_date": ...}'` when given (by hand), else the
        environment (MMM_DBT_MIN_DATE / MMM_DBT_MAX_DATE: how Dagster passes it, because vars on the
        command line make dbt re-parse the whole project on every run), else all history. The
        environment is read at execution only, so partial parsing never depends on the window. -#}
    {%- if var(name, none) is not none -%}{{ var(name) }}
    {%- elif execute -%}{{ env_var('MMM_DBT_' ~ name | upper, '') or default }}
    {%- else -%}{{ default }}{%- endif -%}
{%- endmacro %}

{% macro shifted_date(var_name, days) -%}
    {%- set default = '1900-01-01' if var_name == 'min_date' else '2999-12-31' -%}
    {%- set day = modules.datetime.date.fromisoformat(window_bound(var_name, default) | trim) -%}
    date '{{ (day + modules.datetime.timedelta(days=days)).isoformat() }}'
{%- endmacro %}

{% macro write_start() -%}{{ shifted_date('min_date', -var('lead_days')) }}{%- endmacro %}
{% macro write_end() -%}{{ shifted_date('max_date', var('lookback_days')) }}{%- endmacro %}
{% macro read_start() -%}{{ shifted_date('min_date', -var('lead_days') - var('lookback_days')) }}{%- endmacro %}
{% macro read_end() -%}{{ shifted_date('max_date', var('lookback_days') + var('lead_days')) }}{%- endmacro %}

{% macro in_write_window(column) -%}
    {{ column }} between {{ write_start() }} and {{ write_end() }}
{%- endmacro %}

{% macro in_read_window(column) -%}
    {{ column }} between {{ read_start() }} and {{ read_end() }}
{%- endmacro %}
