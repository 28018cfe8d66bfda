-- The modelling mart: exactly one row per geo-day of the landing data (a geo and day present in
-- any table of var('geo_day_landing_tables')), with every feature family joined. Media flows are 0 on a
-- day without media rows; every other family is NULL where its table has no row.
{{ config(unique_key=['geo_id', 'date']) }}
{%- set families = {
    'calendar': ref('stg_calendar'),
    'sales': ref('sales_day'),
    'media': ref('media_day'),
    'promo': ref('promo_day'),
    'inventory': ref('inventory_day'),
    'weather': ref('weather_daily'),
    'forecast': ref('weather_forecast_error'),
    'competitive': ref('stg_competitive'),
    'digital': ref('stg_digital'),
    'operations': ref('stg_operations'),
} %}

with geo_days as (
    {%- for table in var('geo_day_landing_tables') %}
    select geo_id, date from {{ ref('stg_' ~ table) }} where {{ in_write_window('date') }}
    {{ 'union' if not loop.last }}
    {%- endfor %}
),

days as (
    select
        geo_days.geo_id,
        geo_days.date,
        geo.region,
        geo.population,
        geo.population_density,
        geo.competitor_density,
        geo.store_count
    from geo_days
    left join {{ ref('stg_geo') }} as geo using (geo_id)
),

with_macro as (
    -- macro indicators are monthly (or slower): each day takes its region's latest release
    select
        days.*,
        macro.cpi,
        macro.disposable_income_index,
        macro.unemployment_rate_pct,
        macro.gas_price_per_l,
        days.date - macro.date as macro_age_days
    from days
    asof left join {{ ref('stg_macro') }} as macro
        on macro.region = days.region and macro.date <= days.date
)

select
    with_macro.*,
    isodow(with_macro.date) as day_of_week,
    isodow(with_macro.date) >= 6 as is_weekend,
    cast(date_trunc('week', with_macro.date) as date) as week_start,
    month(with_macro.date) as month,
    {%- for family in families %}
    {{ family }}.* exclude (geo_id, date)
    {%- if family == 'media' %} replace (
        {%- for column in media_flow_columns() %}
        coalesce(media.{{ column }}, 0) as {{ column }},
        {%- endfor %}
        {%- for pacing in var('pacing_types') %}
        coalesce(media.pacing_{{ pacing }}, false) as pacing_{{ pacing }},
        {%- endfor %}
        coalesce(media.active_campaigns, 0) as active_campaigns,
        coalesce(media.active_channels, 0) as active_channels
    ){%- endif %}{{ ',' if not loop.last }}
    {%- endfor %}
from with_macro
{%- for family, relation in families.items() %}
left join (select * from {{ relation }} where {{ in_write_window('date') }}) as {{ family }}
    on {{ family }}.geo_id = with_macro.geo_id and {{ family }}.date = with_macro.date
{%- endfor %}
