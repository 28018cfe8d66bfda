{#- Window features over calendar days, within one geo (PARTITION BY geo_id ORDER BY date).

    RANGE frames with INTERVAL offsets count calendar days, not rows, so a missing day never
    shifts a lag onto the wrong date: the lag of a day whose predecessor is missing is NULL, a
    rolling mean averages the days present in its calendar window, and a lead/lag flag treats a
    missing day as "no event". -#}

{% macro days_frame(first_offset, last_offset) -%}
    over (partition by geo_id order by date range between {{ frame_bound(first_offset) }} and {{ frame_bound(last_offset) }})
{%- endmacro %}

{% macro frame_bound(offset) -%}
    {%- if offset == 0 -%}current row
    {%- elif offset < 0 -%}interval {{ -offset }} day preceding
    {%- else -%}interval {{ offset }} day following
    {%- endif -%}
{%- endmacro %}

{#- Value of `expr` exactly `days` calendar days earlier (NULL when that day is missing). -#}
{% macro lag_days(expr, days) -%}
    max({{ expr }}) {{ days_frame(-days, -days) }}
{%- endmacro %}

{#- `agg`(expr) over the `days` calendar days ending today (today included). -#}
{% macro trailing(agg, expr, days) -%}
    {{ agg }}({{ expr }}) {{ days_frame(-(days - 1), 0) }}
{%- endmacro %}

{#- True when the boolean `expr` holds on any of the next `days` days (today excluded). -#}
{% macro any_in_next(expr, days) -%}
    coalesce(bool_or({{ expr }}) {{ days_frame(1, days) }}, false)
{%- endmacro %}

{#- True when the boolean `expr` held on any of the previous `days` days (today excluded). -#}
{% macro any_in_previous(expr, days) -%}
    coalesce(bool_or({{ expr }}) {{ days_frame(-days, -1) }}, false)
{%- endmacro %}

{#- Days until the next day (within `days`) on which `expr` holds; NULL when none. -#}
{% macro days_until(expr, days) -%}
    min(case when {{ expr }} then date end) {{ days_frame(1, days) }} - date
{%- endmacro %}

{#- Days since the last day (within `days`) on which `expr` held; NULL when none. -#}
{% macro days_since(expr, days) -%}
    date - max(case when {{ expr }} then date end) {{ days_frame(-days, -1) }}
{%- endmacro %}

{#- Day of year on a 365-day circle: 29 February shares 28 February's slot, so normals of
    leap and common years line up. -#}
{% macro climatology_doy(date_expr) -%}
    dayofyear(make_date(2001, month({{ date_expr }}),
        least(day({{ date_expr }}), case when month({{ date_expr }}) = 2 then 28 else 31 end)))
{%- endmacro %}
