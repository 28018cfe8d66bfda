-- One row per geo and ISO week (Monday week_start) of geo_day, for weekly models: flows summed,
-- levels averaged over the days present, flags counted as days. `days` says how complete a week
-- is (the first and the latest week may be partial). A run rewrites every week that overlaps its
-- write window, reading the whole of those weeks from geo_day.
{{ config(unique_key=['geo_id', 'week_start']) }}
{%- set summed = ['revenue', 'orders', 'units', 'cogs', 'contribution_margin', 'new_customers',
    'returning_customers', 'online_revenue', 'pos_revenue', 'conversions', 'attributed_revenue',
    'planned_spend', 'coupon_redemptions', 'precip_mm', 'snowfall_cm', 'hdd', 'cdd', 'sessions']
    + media_flow_columns() %}
{%- set averaged = ['population', 'temp_mean_c', 'temp_max_c', 'temp_min_c', 'feels_like_c',
    'humidity_pct', 'dew_point_c', 'wind_speed_kmh', 'uv_index', 'air_quality_index',
    'temp_mean_anom_c', 'temp_mean_anom_z', 'precip_anom_mm', 'temp_mean_c_fc_error_l1',
    'weighted_discount_depth_pct', 'price_index', 'share_skus_discounted', 'stockout_rate',
    'days_of_cover', 'paid_sov_pct', 'cpi', 'disposable_income_index', 'unemployment_rate_pct',
    'gas_price_per_l', 'competitor_price_gap_pct', 'competitor_promo_intensity',
    'search_trend_index', 'footfall_index', 'mobility_index', 'shipping_delay_hours'] %}
{%- set counted = ['is_holiday', 'is_payday', 'school_in_session', 'severe_alert', 'storm_day',
    'promo_active', 'pre_promo_window', 'post_promo_window', 'carrier_outage'] %}

select
    geo_id,
    week_start,
    any_value(region) as region,
    count(*) as days,
    {%- for column in summed %}
    sum({{ column }}) as {{ column }},
    {%- endfor %}
    {%- for column in averaged %}
    avg({{ column }}) as {{ column }},
    {%- endfor %}
    {%- for column in counted %}
    count(*) filter (where {{ column }}) as {{ column }}_days,
    {%- endfor %}
    1000 * sum(spend) / nullif(sum(impressions), 0) as cpm,
    sum(spend) / nullif(sum(clicks), 0) as cpc,
    sum(spend) / nullif(sum(conversions), 0) as cpa
from {{ ref('geo_day') }}
where week_start between cast(date_trunc('week', {{ write_start() }}) as date) and {{ write_end() }}
group by geo_id, week_start
