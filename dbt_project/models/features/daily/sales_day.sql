-- One row per geo and day with sales: the day's totals over categories. A geo-day that has a
-- total row (category_l1 = 'all') takes it as is, so a source that sends both the total and the
-- split is not counted twice.
{{ config(unique_key=['geo_id', 'date']) }}
{%- set measures = ['orders', 'units', 'revenue', 'cogs', 'contribution_margin', 'new_customers',
    'returning_customers', 'assisted_conversions', 'pos_revenue', 'online_revenue'] %}
select
    geo_id,
    date,
    {%- for measure in measures %}
    case when bool_or(category_l1 = 'all') then sum({{ measure }}) filter (where category_l1 = 'all')
        else sum({{ measure }}) end as {{ measure }},
    {%- endfor %}
    count(*) filter (where category_l1 <> 'all') as categories_reported
from {{ ref('stg_sales') }}
where {{ in_write_window('date') }}
group by geo_id, date
