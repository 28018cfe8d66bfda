-- One row per geo and observed day: the observed weather expanded into the features the models
-- use (docs/features.md, "features.weather_daily"). Every window runs within one geo over calendar
-- days (macros/time_features.sql); anomalies are against the geo's own climatology.
{{ config(unique_key=['geo_id', 'date']) }}
{%- set precip_types = ['none', 'rain', 'snow', 'sleet', 'hail', 'mixed'] %}
{%- set lagged = ['temp_mean_c', 'temp_max_c', 'feels_like_c', 'humidity_pct', 'precip_mm', 'snowfall_cm', 'hdd', 'cdd'] %}
{%- set averaged = ['temp_mean_c', 'temp_max_c', 'feels_like_c', 'humidity_pct', 'uv_index', 'air_quality_index', 'temp_mean_anom_c'] %}
{%- set summed = ['precip_mm', 'snowfall_cm', 'hdd', 'cdd'] %}
{%- set events = ['severe_alert', 'storm_day'] %}
{%- set event_days = var('event_window_days') %}

with observed as (
    select *
    from {{ ref('stg_weather_observed') }}
    where {{ in_read_window('date') }}
),

daily as (
    select
        observed.*,
        temp_max_c - temp_min_c as temp_range_c,
        feels_like_c - temp_mean_c as feels_like_gap_c,
        temp_mean_c - dew_point_c as dew_point_spread_c,
        greatest({{ var('hdd_base_c') }} - temp_mean_c, 0) as hdd,
        greatest(temp_mean_c - {{ var('cdd_base_c') }}, 0) as cdd,
        {%- for precip_type in precip_types %}
        precip_type = '{{ precip_type }}' as precip_is_{{ precip_type }},
        {%- endfor %}
        -- daily totals: trace < 0.2 mm, light < 10, moderate < 25, heavy < 50, violent >= 50
        case
            when precip_mm < 0.2 then 'none'
            when precip_mm < 10 then 'light'
            when precip_mm < 25 then 'moderate'
            when precip_mm < 50 then 'heavy'
            else 'violent'
        end as precip_intensity,
        case when coalesce(pollen_tree, pollen_grass, pollen_weed) is not null
            then coalesce(pollen_tree, 0) + coalesce(pollen_grass, 0) + coalesce(pollen_weed, 0)
        end as pollen_total,
        uv_index >= 6 as uv_high,                    -- WHO "high" and above
        air_quality_index > 150 as aqi_unhealthy,    -- US AQI "unhealthy" and above
        visibility_km < 1 as low_visibility,         -- fog
        coalesce(storm_category, 0) >= 1 as storm_day,
        temp_mean_c - normals.temp_mean_normal_c as temp_mean_anom_c,
        temp_max_c - normals.temp_max_normal_c as temp_max_anom_c,
        temp_min_c - normals.temp_min_normal_c as temp_min_anom_c,
        (temp_mean_c - normals.temp_mean_normal_c) / nullif(normals.temp_mean_sd_c, 0) as temp_mean_anom_z,
        precip_mm - normals.precip_normal_mm as precip_anom_mm,
        snowfall_cm - normals.snowfall_normal_cm as snowfall_anom_cm,
        humidity_pct - normals.humidity_normal_pct as humidity_anom_pct
    from observed
    left join {{ ref('weather_climatology') }} as normals
        on normals.geo_id = observed.geo_id
        and normals.doy = {{ climatology_doy('observed.date') }}
),

windowed as (
    select
        daily.*,
        {%- for column in lagged %}{% for days in [1, 2, 3, 7] %}
        {{ lag_days(column, days) }} as {{ column }}_lag{{ days }},
        {%- endfor %}{% endfor %}
        {%- for column in averaged %}{% for days in [7, 28] %}
        {{ trailing('avg', column, days) }} as {{ column }}_avg{{ days }}d,
        {%- endfor %}{% endfor %}
        {%- for column in summed %}{% for days in [3, 7] %}
        {{ trailing('sum', column, days) }} as {{ column }}_sum{{ days }}d,
        {%- endfor %}{% endfor %}
        {%- for event in events %}
        {{ any_in_next(event, 1) }} as {{ event }}_lead1,
        {{ any_in_previous(event, 1) }} as {{ event }}_lag1,
        not {{ event }} and {{ any_in_next(event, event_days) }} as {{ event }}_pre_window,
        not {{ event }} and {{ any_in_previous(event, event_days) }} as {{ event }}_post_window,
        {%- endfor %}
        {{ trailing('count', '*', 7) }} as observed_days_7d
    from daily
)

select *
from windowed
where {{ in_write_window('date') }}
