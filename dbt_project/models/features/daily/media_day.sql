-- One row per geo and day with media rows: all channels together (macros/media.sql), and spend,
-- impressions and clicks by channel group, campaign objective and pacing type.
{{ config(unique_key=['geo_id', 'date']) }}
select
    geo_id,
    date,
    {{ media_measures() }},
    {%- for name, metric, dimension, value in media_breakdowns() %}
    coalesce(sum({{ metric }}) filter (where {{ dimension }} = '{{ value }}'), 0) as {{ name }},
    {%- endfor %}
    count(distinct channel) filter (where spend > 0) as active_channels
from {{ ref('stg_media_spend') }}
where {{ in_write_window('date') }}
group by geo_id, date
