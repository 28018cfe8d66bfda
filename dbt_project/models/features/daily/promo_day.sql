-- One row per geo and day with prices: discount depth and price index weighted by list price,
-- promotion share, and the windows around promotions where demand dips (shoppers wait for a
-- promotion they expect) and sags after it (they stocked up).
{{ config(unique_key=['geo_id', 'date']) }}
{%- set window_days = var('promo_window_days') %}

with prices as (
    select
        promotions.*,
        -- a SKU missing from products is weighted by the list price its discount implies
        coalesce(products.list_price, promotions.price / nullif(1 - promotions.discount_depth_pct / 100, 0))
            as list_price
    from {{ ref('stg_promotions') }} as promotions
    left join {{ ref('stg_products') }} as products using (sku_id)
    where {{ in_read_window('promotions.date') }}
),

daily as (
    select
        geo_id,
        date,
        count(*) as skus_priced,
        sum(discount_depth_pct * list_price) / nullif(sum(list_price), 0) as weighted_discount_depth_pct,
        -- 100 = everything at list price; 80 = the assortment costs 20% less than at list
        100 * sum(price) / nullif(sum(list_price), 0) as price_index,
        avg(case when discount_depth_pct > 0 then 1 else 0 end) as share_skus_discounted,
        count(distinct promo_id) as active_promotions,
        sum(coupon_redemptions) as coupon_redemptions
    from prices
    group by geo_id, date
),

flagged as (
    select
        *,
        coalesce(weighted_discount_depth_pct >= {{ var('promo_min_depth_pct') }}, false) as promo_active
    from daily
),

windowed as (
    select
        *,
        not promo_active and {{ any_in_next('promo_active', window_days) }} as pre_promo_window,
        not promo_active and {{ any_in_previous('promo_active', window_days) }} as post_promo_window,
        -- 0 on a promotion day; NULL when no promotion is within promo_window_days
        case when promo_active then 0 else {{ days_until('promo_active', window_days) }} end as days_to_promo,
        case when promo_active then 0 else {{ days_since('promo_active', window_days) }} end as days_since_promo
    from flagged
)

select *
from windowed
where {{ in_write_window('date') }}
