-- One row per geo and observed day: the forecasts issued L days before that day (L in
-- forecast_leads), their errors and their revisions.
--   {var}_fc_l{L}            the forecast of day d issued on d - L
--   {var}_fc_error_l{L}      observed - forecast issued L days earlier (> 0: the forecast was too low)
--   {var}_fc_revision_l{A}_l{B}  forecast at lead B - forecast at the longer lead A (> 0: revised up
--                            as the day came closer)
-- Missing forecasts give NULL, never a forecast of another lead.
{{ config(unique_key=['geo_id', 'date']) }}
{%- set variables = ['temp_mean_c', 'temp_max_c', 'temp_min_c', 'precip_mm'] %}
{%- set leads = var('forecast_leads') | sort %}

with observed as (
    select geo_id, date, {{ variables | join(', ') }}
    from {{ ref('stg_weather_observed') }}
    where {{ in_write_window('date') }}
),

forecasts as (
    select
        geo_id,
        {%- for lead in leads %}{% for column in variables %}
        max({{ column }}) filter (where lead_days = {{ lead }}) as {{ column }}_fc_l{{ lead }},
        {%- endfor %}{% endfor %}
        target_date as date
    from {{ ref('stg_weather_forecast') }}
    where {{ in_write_window('target_date') }} and lead_days in ({{ leads | join(', ') }})
    group by geo_id, target_date
)

{%- set outputs = [] %}
{%- for lead in leads %}{% for column in variables %}
    {%- do outputs.append('forecasts.' ~ column ~ '_fc_l' ~ lead) %}
    {%- do outputs.append('observed.' ~ column ~ ' - forecasts.' ~ column ~ '_fc_l' ~ lead
        ~ ' as ' ~ column ~ '_fc_error_l' ~ lead) %}
{%- endfor %}{% endfor %}
{%- for longer, shorter in zip(leads[1:], leads[:-1]) %}{% for column in variables %}
    {%- do outputs.append('forecasts.' ~ column ~ '_fc_l' ~ shorter ~ ' - forecasts.' ~ column ~ '_fc_l'
        ~ longer ~ ' as ' ~ column ~ '_fc_revision_l' ~ longer ~ '_l' ~ shorter) %}
{%- endfor %}{% endfor %}

select
    observed.geo_id,
    observed.date,
    {{ outputs | join(',\n    ') }}
from observed
left join forecasts using (geo_id, date)
