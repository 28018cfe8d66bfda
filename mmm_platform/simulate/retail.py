"""Products, promotions and inventory: the retail levers that move demand besides media and weather.

Promotions lift their category's revenue in proportion to discount depth and the promoted SKUs' share,
with a dip in the days before an announced promotion and a hangover after it (pantry loading).
Inventory is replenished against the retailer's demand plan (expected demand, not realised demand),
so stockouts come from supplier delays and promotion surges, never from the weather surprise: the
weather effect stays linear and the forecast-error instrument stays valid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from mmm_platform.simulate.config import WorldConfig, rng_for
from mmm_platform.simulate.frames import conform, panel_frame, panel_values, string_series
from mmm_platform.simulate.geography import Geography
from mmm_platform.simulate.timeline import Timeline


@dataclass(frozen=True)
class Category:
    """A category_l1 and how its demand responds (money in $ for a geo of size 1)."""

    name: str
    affinity: str
    base: float
    #: true linear effect of observed temp_mean, $ per °C per geo-day
    temp_effect: float
    #: temperature where the linear term is zero (sets only the level, not the effect)
    temp_ref: float
    #: true linear effect of observed precipitation, $ per mm per geo-day
    precip_effect: float
    online_share: float
    #: multiplicative uplift on heatwave days and on the eve of a storm (stock-up)
    heat_uplift: float
    storm_eve_uplift: float
    season_peak: int
    season_amp: float
    #: share of the forecast-driven (unobserved) demand that lands in this category
    forecast_demand_share: float
    unit_cost_share: float
    price_range: tuple[float, float]
    units_per_order: float
    subcategories: tuple[tuple[str, str], ...]


# fmt: off
CATEGORIES: tuple[Category, ...] = (
    Category(
        name="outdoor_living", affinity="hot", base=6000, temp_effect=125.0, temp_ref=10.0,
        precip_effect=-50.0, online_share=0.25, heat_uplift=0.18, storm_eve_uplift=0.0, season_peak=140,
        season_amp=0.15, forecast_demand_share=0.5, unit_cost_share=0.55, price_range=(25, 300),
        units_per_order=1.4,
        subcategories=(("grills", "hot"), ("fans_cooling", "hot"), ("pool_patio", "hot"),
                       ("garden", "neutral")),
    ),
    Category(
        name="apparel", affinity="cold", base=5000, temp_effect=-20.0, temp_ref=12.0, precip_effect=-12.0,
        online_share=0.40, heat_uplift=-0.03, storm_eve_uplift=0.0, season_peak=320, season_amp=0.12,
        forecast_demand_share=0.05, unit_cost_share=0.42, price_range=(20, 150), units_per_order=2.2,
        subcategories=(("outerwear", "cold"), ("knitwear", "cold"), ("rainwear", "rain"),
                       ("footwear", "neutral")),
    ),
    Category(
        name="home", affinity="rain", base=4200, temp_effect=10.0, temp_ref=12.0, precip_effect=18.0,
        online_share=0.35, heat_uplift=0.0, storm_eve_uplift=0.05, season_peak=340, season_amp=0.08,
        forecast_demand_share=0.1, unit_cost_share=0.50, price_range=(10, 80), units_per_order=1.8,
        subcategories=(("indoor_games", "rain"), ("storage", "neutral"), ("cleaning", "neutral"),
                       ("decor", "neutral")),
    ),
    Category(
        name="winter_seasonal", affinity="snow", base=2100, temp_effect=-15.0, temp_ref=5.0,
        precip_effect=12.0, online_share=0.30, heat_uplift=0.0, storm_eve_uplift=0.35, season_peak=355,
        season_amp=0.35, forecast_demand_share=0.05, unit_cost_share=0.50, price_range=(15, 200),
        units_per_order=1.3,
        subcategories=(("snow_tools", "snow"), ("heaters", "cold"), ("ice_melt", "snow"),
                       ("holiday_decor", "neutral")),
    ),
    Category(
        name="grocery", affinity="neutral", base=6500, temp_effect=55.0, temp_ref=12.0, precip_effect=-18.0,
        online_share=0.18, heat_uplift=0.06, storm_eve_uplift=0.25, season_peak=180, season_amp=0.03,
        forecast_demand_share=0.3, unit_cost_share=0.68, price_range=(3, 15), units_per_order=3.5,
        subcategories=(("beverages", "hot"), ("snacks", "neutral"), ("pantry", "neutral"),
                       ("household", "neutral")),
    ),
)
# fmt: on
CATEGORY_NAMES = [c.name for c in CATEGORIES]

#: revenue elasticity to discount depth (a 30% discount on the whole category: +60% revenue)
PROMO_ELASTICITY = 2.0
#: dip in the 4 days before an announced promotion, per unit of depth x promoted share
PRE_DIP = 0.5
#: hangover in the 7 days after, per unit of depth x promoted share, decaying with a 3-day scale
HANGOVER = 0.6
#: share of demand for an out-of-stock SKU that switches to another SKU of the category
SUBSTITUTION = 0.35
PROMO_TYPES = ("discount", "coupon", "bundle", "loyalty", "clearance")


@dataclass(frozen=True)
class Products:
    ids: list[str]
    category: np.ndarray
    subcategory: list[str]
    affinity: list[str]
    lifecycle: list[str]
    list_price: np.ndarray
    unit_cost: np.ndarray
    #: (T, K) revenue weight of each SKU inside its category, before promotions
    weight: np.ndarray
    #: day from which a discontinued SKU is no longer reordered (n_days for the others)
    last_order_day: np.ndarray

    @property
    def onehot(self) -> np.ndarray:
        """(K, C) membership of SKUs in categories."""
        return np.eye(len(CATEGORIES))[self.category]

    def table(self) -> pl.DataFrame:
        return conform(
            "products",
            pl.DataFrame(
                {
                    "sku_id": self.ids,
                    "category_l1": [CATEGORY_NAMES[c] for c in self.category],
                    "category_l2": self.subcategory,
                    "weather_affinity": self.affinity,
                    "lifecycle_stage": self.lifecycle,
                    "unit_cost": self.unit_cost,
                    "list_price": self.list_price,
                }
            ),
        )


def build_products(config: WorldConfig) -> Products:
    """SKUs spread round-robin over categories; a few new, clearance and discontinued ones."""
    rng = rng_for(config.seed, "products")
    n_k, n_t = config.n_skus, config.n_days
    category = np.arange(n_k) % len(CATEGORIES)
    rank = np.arange(n_k) // len(CATEGORIES)
    sub = [CATEGORIES[c].subcategories[r % 4] for c, r in zip(category, rank, strict=True)]
    lifecycle = np.array(["core"] * n_k, dtype=object)
    # the first SKU of every category stays core, so no category ever runs out of SKUs
    candidates = rng.permutation(np.flatnonzero(rank > 0))
    n_new, n_clear, n_disc = round(0.1 * n_k), round(0.1 * n_k), round(0.05 * n_k)
    lifecycle[candidates[:n_new]] = "new"
    lifecycle[candidates[n_new : n_new + n_clear]] = "clearance"
    lifecycle[candidates[n_new + n_clear : n_new + n_clear + n_disc]] = "discontinued"
    t = np.arange(n_t)[:, None]
    weight = np.broadcast_to(rng.gamma(3.0, 1.0, n_k), (n_t, n_k)).copy()
    launch = rng.integers(n_t // 10, n_t // 2, n_k)
    wind_down = max(n_t - 90, n_t // 2)
    is_new = lifecycle == "new"
    is_disc = lifecycle == "discontinued"
    weight[:, is_new] *= np.clip((t - launch[is_new]) / 60.0, 0.0, 1.0)
    weight[:, is_disc] *= np.clip((n_t - t) / (n_t - wind_down), 0.0, 1.0)
    low = np.array([CATEGORIES[c].price_range[0] for c in category])
    high = np.array([CATEGORIES[c].price_range[1] for c in category])
    list_price = np.round(np.exp(rng.uniform(np.log(low), np.log(high))), 2) - 0.01
    cost_share = np.array([CATEGORIES[c].unit_cost_share for c in category])
    return Products(
        ids=[f"SKU-{k + 1:04d}" for k in range(n_k)],
        category=category,
        subcategory=[s[0] for s in sub],
        affinity=[s[1] for s in sub],
        lifecycle=lifecycle.tolist(),
        list_price=list_price,
        unit_cost=np.round(list_price * cost_share * rng.uniform(0.9, 1.1, n_k), 2),
        weight=weight,
        last_order_day=np.where(is_disc, wind_down, n_t),
    )


@dataclass(frozen=True)
class PromoEvent:
    promo_id: str
    kind: str
    category: int
    geos: np.ndarray
    skus: np.ndarray
    start: int
    end: int
    depth: float
    #: announced promotions have a pre-dip and a hangover; clearance markdowns do not
    announced: bool


def draw_promotions(config: WorldConfig, timeline: Timeline, geo: Geography, products: Products) -> list[PromoEvent]:
    """Per category, promotions one after another (never two at once), by region; Black Friday national."""
    rng = rng_for(config.seed, "promotions")
    n_t = config.n_days
    black_fridays = [
        t
        for t in range(n_t)
        if timeline.holiday[t] >= 0 and timeline.holiday_names[timeline.holiday[t]] == "Black Friday"
    ]
    events: list[PromoEvent] = []
    all_geos = np.arange(geo.n)
    for c in range(len(CATEGORIES)):
        skus = np.flatnonzero(products.category == c)
        reserved = [(bf - 1, min(bf + 3, n_t - 1)) for bf in black_fridays]
        windows = [(s, e, "discount", float(rng.choice([25, 30, 35, 40])), all_geos, skus) for s, e in reserved]
        t = int(rng.integers(5, 20))
        while t < n_t - 3:
            length = int(rng.integers(3, 11))
            end = min(t + length - 1, n_t - 1)
            clash = [r for r in reserved if t - 10 <= r[1] and end + 10 >= r[0]]
            if clash:
                t = clash[0][1] + int(rng.integers(10, 20))
                continue
            kind = str(rng.choice(PROMO_TYPES[:4], p=[0.55, 0.2, 0.15, 0.1]))
            regions = rng.uniform(size=len(geo.regions)) < 0.5
            national = rng.uniform() < 0.4 or not regions.any()
            geos = all_geos if national else np.flatnonzero(regions[geo.region_idx])
            chosen = rng.choice(skus, size=int(rng.integers(1, len(skus) + 1)), replace=False)
            windows.append((t, end, kind, float(rng.choice([10, 15, 20, 25, 30, 35, 40])), geos, np.sort(chosen)))
            t = end + int(rng.integers(14, 41))
        events += [PromoEvent("", kind, c, g, k, s, e, d, True) for s, e, kind, d, g, k in windows]
    for k in np.flatnonzero(np.array(products.lifecycle) == "clearance"):
        markdown = PromoEvent(
            promo_id="",
            kind="clearance",
            category=int(products.category[k]),
            geos=all_geos,
            skus=np.array([k]),
            start=max(n_t - 90, n_t // 2),
            end=n_t - 1,
            depth=float(rng.choice([30, 40, 50])),
            announced=False,
        )
        events.append(markdown)
    events.sort(key=lambda e: (e.start, e.category, e.kind))
    return [replace(e, promo_id=f"PR-{i + 1:04d}") for i, e in enumerate(events)]


@dataclass(frozen=True)
class PromoArrays:
    """Promotions laid out on the (G, T, K) and (G, T, C) grids."""

    depth: np.ndarray  # (G, T, K) percent
    code: np.ndarray  # (G, T, K) index of the promotion, -1 none
    lift: np.ndarray  # (G, T, C) multiplier on promotion days
    pre_post: np.ndarray  # (G, T, C) multiplier of the pre-dip and hangover days
    promo_cell: np.ndarray  # (G, T, C) some SKU of the category on promotion
    pre_cell: np.ndarray
    post_cell: np.ndarray


def lay_out_promotions(events: list[PromoEvent], products: Products, n_g: int) -> PromoArrays:
    n_t, n_k = products.weight.shape
    n_c = len(CATEGORIES)
    depth = np.zeros((n_g, n_t, n_k))
    code = np.full((n_g, n_t, n_k), -1, dtype=np.int32)
    pre_post = np.ones((n_g, n_t, n_c))
    pre_cell = np.zeros((n_g, n_t, n_c), dtype=bool)
    post_cell = np.zeros((n_g, n_t, n_c), dtype=bool)
    share = category_share(products.weight, products)
    for i, e in enumerate(events):
        cells = (e.geos[:, None, None], np.arange(e.start, e.end + 1)[None, :, None], e.skus[None, None, :])
        deeper = depth[cells] < e.depth  # a clearance markdown may overlap a shallower promotion
        depth[cells] = np.where(deeper, e.depth, depth[cells])
        code[cells] = np.where(deeper, i, code[cells])
        if not e.announced:
            continue
        promoted = share[:, e.skus].sum(axis=1)
        strength = e.depth / 100 * promoted
        for offset in range(1, 5):
            t = e.start - offset
            if t >= 0:
                pre_post[e.geos, t, e.category] *= 1 - PRE_DIP * strength[t]
                pre_cell[e.geos, t, e.category] = True
        for offset in range(7):
            t = e.end + 1 + offset
            if t < n_t:
                pre_post[e.geos, t, e.category] *= 1 - HANGOVER * strength[t] * np.exp(-offset / 3)
                post_cell[e.geos, t, e.category] = True
    lift = 1 + PROMO_ELASTICITY * (depth / 100 * share[None]) @ products.onehot
    promo_cell = (depth > 0).astype(float) @ products.onehot > 0
    return PromoArrays(depth, code, lift, pre_post, promo_cell, pre_cell & ~promo_cell, post_cell & ~promo_cell)


def category_share(weight: np.ndarray, products: Products) -> np.ndarray:
    """Each SKU's share of its category (weights normalised inside the category), same shape as weight."""
    totals = weight @ products.onehot
    return weight / np.maximum(totals @ products.onehot.T, 1e-12)


@dataclass(frozen=True)
class Inventory:
    """Daily stock per (G, T, K); `availability` is the share of category demand that could be served."""

    served: np.ndarray
    on_hand: np.ndarray
    inbound: np.ndarray
    open_po: np.ndarray
    transfers_in: np.ndarray
    transfers_out: np.ndarray
    stockout: np.ndarray
    availability: np.ndarray  # (G, T, C)


@dataclass(frozen=True)
class SupplyDraws:
    """Random supply events, drawn once so every counterfactual sees the same suppliers."""

    lead_days: np.ndarray  # (K,)
    delay: np.ndarray  # (T, G, K) extra days on an order placed that day
    #: (T, K) lead time the vendor quotes: longer while a disruption lasts
    quoted_lead: np.ndarray
    transfer_in: np.ndarray  # (T, G, K) fraction of a day's demand transferred in
    transfer_out: np.ndarray
    initial: np.ndarray  # (G, K) initial stock as a fraction of the order-up-to level


def draw_supply(config: WorldConfig, n_g: int) -> SupplyDraws:
    rng = rng_for(config.seed, "supply")
    n_t, n_k = config.n_days, config.n_skus
    shape = (n_t, n_g, n_k)
    late = rng.uniform(size=shape) < 0.04
    delay = np.where(late, rng.integers(2, 15, shape), 0).astype(np.int16)
    lead_days = rng.integers(3, 12, n_k).astype(float)
    quoted = np.broadcast_to(lead_days, (n_t, n_k)).copy()
    # supplier disruptions: a SKU's orders everywhere arrive ~3 weeks late for a month
    for _ in range(max(1, round(2 * n_t / 365))):
        k, start = rng.integers(n_k), rng.integers(0, max(1, n_t - 30))
        delay[start : start + 30, :, k] += 21
        quoted[start : start + 30, k] += 21
    moves = rng.uniform(size=(2, *shape)) < 0.01
    return SupplyDraws(
        lead_days=lead_days,
        delay=delay,
        quoted_lead=quoted,
        transfer_in=np.where(moves[0], rng.uniform(1.0, 3.0, shape), 0.0),
        transfer_out=np.where(moves[1], rng.uniform(0.5, 2.0, shape), 0.0),
        initial=rng.uniform(0.6, 1.0, (n_g, n_k)),
    )


def simulate_inventories(
    units: np.ndarray, products: Products, supply: SupplyDraws, shares: np.ndarray
) -> list[Inventory]:
    """Order-up-to replenishment against planned demand `units` (S, G, T, K), one inventory per plan S
    (with and without promotions) with the same supply; one loop over days, vectorised over the rest."""
    n_s, n_g, n_t, n_k = units.shape
    demand = np.ascontiguousarray(units.transpose(2, 0, 1, 3))  # (T, S, G, K)
    horizon = 14
    padded = np.concatenate([demand, np.repeat(demand[-1:], horizon, axis=0)])
    csum = np.concatenate([np.zeros((1, n_s, n_g, n_k)), np.cumsum(padded, axis=0)])
    rate = (csum[horizon : horizon + n_t] - csum[:n_t]) / horizon
    lead = supply.lead_days
    target = rate * (lead + 10) * 1.2
    reorder = rate * (lead + 6)
    on_hand = target[0] * supply.initial
    open_qty = np.zeros((n_s, n_g, n_k))
    arrival = np.full((n_s, n_g, n_k), -1)
    out = {k: np.zeros((n_t, n_s, n_g, n_k)) for k in ("served", "on_hand", "inbound", "open_po", "tin", "tout")}
    for t in range(n_t):
        arriving = arrival == t
        inbound = np.where(arriving, open_qty, 0.0)
        open_qty[arriving] = 0.0
        arrival[arriving] = -1
        tin = np.round(supply.transfer_in[t] * rate[t])
        tout = np.minimum(np.round(supply.transfer_out[t] * rate[t]), np.floor(0.5 * on_hand))
        on_hand = on_hand + inbound + tin - tout
        sold = np.minimum(on_hand, demand[t])
        out["served"][t] = np.where(demand[t] > 0, sold / np.maximum(demand[t], 1e-12), 1.0)
        on_hand = on_hand - sold
        order = (open_qty == 0) & (on_hand < reorder[t]) & (t < products.last_order_day)
        open_qty = np.where(order, np.ceil(target[t] - on_hand), open_qty)
        arrival = np.where(order, t + lead.astype(int) + supply.delay[t], arrival)
        out["on_hand"][t], out["inbound"][t], out["open_po"][t] = on_hand, inbound, open_qty
        out["tin"][t], out["tout"][t] = tin, tout
    g = {k: v.transpose(1, 2, 0, 3) for k, v in out.items()}  # (S, G, T, K)
    inventories = []
    for i in range(n_s):
        served = g["served"][i]
        lost = ((1 - served) * shares[i]) @ products.onehot
        inventories.append(
            Inventory(
                served=served,
                on_hand=np.floor(g["on_hand"][i]),
                inbound=np.round(g["inbound"][i]),
                open_po=np.round(g["open_po"][i]),
                transfers_in=g["tin"][i],
                transfers_out=g["tout"][i],
                stockout=(served < 1.0 - 1e-9) & (g["on_hand"][i] < 0.5),
                availability=1 - (1 - SUBSTITUTION) * lost,
            )
        )
    return inventories


@dataclass(frozen=True)
class Retail:
    """Products, promotions and inventory, with and without promotions (for the counterfactual)."""

    products: Products
    events: list[PromoEvent]
    promo: PromoArrays
    #: (G, T, K) each SKU's share of its category's revenue on the day, promotions included
    revenue_share: np.ndarray
    price: np.ndarray
    planned_units: np.ndarray
    supply: SupplyDraws
    #: (G, T, C) cost of goods per dollar of category revenue at the day's prices and SKU mix
    cost_per_dollar: np.ndarray
    inventory: Inventory
    inventory_without_promotions: Inventory


def build_retail(config: WorldConfig, timeline: Timeline, geo: Geography, planned_revenue: np.ndarray) -> Retail:
    """`planned_revenue` (G, T, C): the retailer's demand plan without promotions."""
    products = build_products(config)
    events = draw_promotions(config, timeline, geo, products)
    promo = lay_out_promotions(events, products, geo.n)
    supply = draw_supply(config, geo.n)
    base_share = category_share(products.weight, products)[None]
    price = np.round(products.list_price * geo.price_index[:, None, None] * (1 - promo.depth / 100), 2)

    def plan(with_promotions: bool) -> tuple[np.ndarray, np.ndarray]:
        boost = 1 + PROMO_ELASTICITY * promo.depth / 100 if with_promotions else np.ones_like(promo.depth)
        share = base_share * boost
        share = share / np.maximum((share @ products.onehot) @ products.onehot.T, 1e-12)
        cat = planned_revenue * (promo.lift * promo.pre_post if with_promotions else 1.0)
        sku_price = price if with_promotions else products.list_price * geo.price_index[:, None, None]
        return share, (cat @ products.onehot.T) * share / sku_price

    share, units = plan(True)
    share_np, units_np = plan(False)
    with_promotions, without = simulate_inventories(
        np.stack([units, units_np]), products, supply, np.stack([share, share_np])
    )
    return Retail(
        products=products,
        events=events,
        promo=promo,
        revenue_share=share,
        price=price,
        planned_units=units,
        supply=supply,
        cost_per_dollar=(share * products.unit_cost / price) @ products.onehot,
        inventory=with_promotions,
        inventory_without_promotions=without,
    )


def promotions_table(retail: Retail, geo: Geography, timeline: Timeline, config: WorldConfig) -> pl.DataFrame:
    rng = rng_for(config.seed, "promotions_table")
    n_t = config.n_days
    promo, events = retail.promo, retail.events
    kind = np.array([PROMO_TYPES.index(e.kind) for e in events] + [-1])[promo.code]
    month, day = timeline.month[:n_t], timeline.day[:n_t]
    holiday_shipping = ((month == 11) & (day >= 15)) | ((month == 12) & (day <= 24))
    columns = {
        "price": retail.price,
        "discount_depth_pct": promo.depth,
        "promo_id": string_series("promo_id", [e.promo_id for e in events], panel_values(promo.code, n_t)),
        "coupon_redemptions": np.where(kind == PROMO_TYPES.index("coupon"), rng.poisson(0.3 * retail.planned_units), 0),
        "is_bundle": kind == PROMO_TYPES.index("bundle"),
        "free_shipping_threshold": np.broadcast_to(np.where(holiday_shipping, 35.0, 50.0)[None, :, None], kind.shape),
        "loyalty_multiplier": np.where(kind == PROMO_TYPES.index("loyalty"), 2.0, 1.0),
    }
    return panel_frame("promotions", geo.ids, timeline.epoch_days[:n_t], columns, ("sku_id", retail.products.ids))


def inventory_table(retail: Retail, geo: Geography, timeline: Timeline, config: WorldConfig) -> pl.DataFrame:
    inv = retail.inventory
    capacity = np.ceil(retail.planned_units.mean(axis=1, keepdims=True) * 3 * (1 + 0.1 * geo.size[:, None, None]))
    columns = {
        "on_hand_units": inv.on_hand,
        "stockout": inv.stockout,
        "inbound_units": inv.inbound,
        "open_po_units": inv.open_po,
        "vendor_lead_days": np.broadcast_to(retail.supply.quoted_lead[None], inv.on_hand.shape),
        "fulfillment_capacity_units": np.broadcast_to(capacity, inv.on_hand.shape),
        "transfers_in_units": inv.transfers_in,
        "transfers_out_units": inv.transfers_out,
    }
    n_t = config.n_days
    return panel_frame("inventory", geo.ids, timeline.epoch_days[:n_t], columns, ("sku_id", retail.products.ids))
