-- One row per geo and day with inventory: stockout rate over the SKUs tracked, and days of cover
-- (units on hand over the average daily units sold in the 28 days up to that day).
{{ config(unique_key=['geo_id', 'date']) }}
with stock as (
    select
        geo_id,
        date,
        count(*) as skus_tracked,
        avg(case when stockout then 1 else 0 end) as stockout_rate,
        sum(on_hand_units) as on_hand_units,
        sum(inbound_units) as inbound_units,
        sum(open_po_units) as open_po_units
    from {{ ref('stg_inventory') }}
    where {{ in_write_window('date') }}
    group by geo_id, date
),

demand as (
    select geo_id, date, {{ trailing('avg', 'units', 28) }} as avg_daily_units_28d
    from {{ ref('sales_day') }}
    where {{ in_read_window('date') }}
)

select
    stock.*,
    demand.avg_daily_units_28d,
    stock.on_hand_units / nullif(demand.avg_daily_units_28d, 0) as days_of_cover
from stock
left join demand using (geo_id, date)
