-- Each geo's own climatology: for every geo and day of year (on a 365-day circle), the normals of
-- its observed weather over all history, smoothed over the days of year within
-- +/- climatology_half_window_days (a short history still gives stable normals).
-- It reads raw directly, not stg_weather_observed: that view is in the daily partitioned
-- selection, which reads this table, and the two selections must not depend on each other both ways.
{%- set half_window = var('climatology_half_window_days') %}
with observed as (
    select
        geo_id,
        year(date) as year,
        {{ climatology_doy('date') }} as doy,
        temp_mean_c, temp_max_c, temp_min_c, precip_mm, snowfall_cm, humidity_pct
    from {{ source('raw', 'weather_observed') }}
),

spread as (
    -- every observation counts towards the normals of the days of year around its own
    select observed.* replace (((observed.doy - 1 + shift.days + 365) % 365) + 1 as doy)
    from observed
    cross join range(-{{ half_window }}, {{ half_window }} + 1) as shift(days)
)

select
    geo_id,
    doy,
    avg(temp_mean_c) as temp_mean_normal_c,
    stddev_samp(temp_mean_c) as temp_mean_sd_c,
    avg(temp_max_c) as temp_max_normal_c,
    avg(temp_min_c) as temp_min_normal_c,
    avg(precip_mm) as precip_normal_mm,
    avg(snowfall_cm) as snowfall_normal_cm,
    avg(humidity_pct) as humidity_normal_pct,
    count(*) as n_obs,
    count(distinct year) as n_years
from spread
group by geo_id, doy
