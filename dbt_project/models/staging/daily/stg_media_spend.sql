-- Landing table media_spend; channel names are normalised (trimmed, lower case) so that
-- "Search" and "search " are one channel downstream.
select * replace (lower(trim(channel)) as channel)
from ({{ staging_select('media_spend') }})
