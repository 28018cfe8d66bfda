-- Landing table weather_forecast with its lead: lead_days = target_date - issue_date (0..14).
select *, target_date - issue_date as lead_days
from ({{ staging_select('weather_forecast') }})
