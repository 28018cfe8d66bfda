{#- The model has exactly one row per geo-day of the landing data (a geo and day present in any
    of the geo-daily landing tables var('geo_day_landing_tables')), within the run's write window.
    Fails with the geo-days that are missing, extra or duplicated. -#}
{% test matches_landing_geo_days(model) %}
with landing as (
    {%- for table in var('geo_day_landing_tables') %}
    select geo_id, date from {{ source('raw', table) }} where {{ in_write_window('date') }}
    {{ 'union' if not loop.last }}
    {%- endfor %}
),

modelled as (
    select geo_id, date, count(*) as n_rows
    from {{ model }}
    where {{ in_write_window('date') }}
    group by geo_id, date
)

select
    coalesce(landing.geo_id, modelled.geo_id) as geo_id,
    coalesce(landing.date, modelled.date) as date,
    landing.geo_id is not null as in_landing,
    coalesce(modelled.n_rows, 0) as n_rows
from landing
full join modelled using (geo_id, date)
where landing.geo_id is null or modelled.geo_id is null or modelled.n_rows > 1
{% endtest %}
