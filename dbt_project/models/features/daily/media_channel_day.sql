-- One row per geo, day and channel with media rows: spend, impressions, clicks, conversions and
-- their ratios, plan deviation, paid share of voice and pacing flags (macros/media.sql).
-- Channels are free-form, so they stay long here: the models pivot them.
{{ config(unique_key=['geo_id', 'date', 'channel']) }}
select
    geo_id,
    date,
    channel,
    {{ media_measures() }}
from {{ ref('stg_media_spend') }}
where {{ in_write_window('date') }}
group by geo_id, date, channel
