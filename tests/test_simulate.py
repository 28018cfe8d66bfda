"""The demo world: contract conformance, efficient forecasts, consistent counterfactual truth, experiments
and shocks as designed, and deterministic landing files. The identification properties (IV vs OLS, the
oracle, experiment readouts, leaks) are in test_world_honesty.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mmm_platform.contracts import load_contract
from mmm_platform.simulate import World, WorldConfig, simulate, write_landing
from mmm_platform.simulate.context import calendar_changes
from mmm_platform.simulate.frames import schema
from mmm_platform.simulate.geography import ZONES, build_geography
from mmm_platform.simulate.media import CAMPAIGNS
from mmm_platform.simulate.timeline import build_timeline
from mmm_platform.simulate.weather import SHOCK_CALENDAR_MARGIN, simulate_weather
from mmm_platform.simulate.world import build_model

#: worlds in tests start on a fixed day, so they do not change with the date the suite runs on
FIRST_DAY = dt.date(2024, 1, 1)
SMALL = WorldConfig(seed=3, n_geos=9, n_days=180, start=FIRST_DAY)
DEFAULT = WorldConfig(start=FIRST_DAY)


@pytest.fixture(scope="module")
def small() -> World:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def year() -> World:
    return simulate(WorldConfig(seed=11, n_geos=12, n_days=365, start=FIRST_DAY))


@pytest.fixture(scope="module")
def default() -> World:
    return simulate(DEFAULT)


def contract_violations(world: World) -> list[str]:
    """Every way the world's tables break the landing contract (empty when they conform)."""
    contract = load_contract()
    problems = []
    if set(world.tables) != set(contract.tables):
        problems.append(f"tables {sorted(world.tables)} != contract {sorted(contract.tables)}")
    end = world.config.end
    geos = set(world.tables["geo"]["geo_id"])
    skus = set(world.tables["products"]["sku_id"])
    for name, table in contract.tables.items():
        frame = world.tables[name]
        if dict(frame.schema) != schema(name):
            problems.append(f"{name}: schema {dict(frame.schema)}")
            continue
        if frame.is_empty():
            problems.append(f"{name}: empty")
        if frame.select(table.key).is_duplicated().any():
            problems.append(f"{name}: duplicate key")
        for col in table.columns:
            values = frame[col.name]
            if col.required and values.null_count():
                problems.append(f"{name}.{col.name}: {values.null_count()} nulls in a required column")
            values = values.drop_nulls()
            if col.min is not None and (values < col.min).any():
                problems.append(f"{name}.{col.name}: below {col.min} (min {values.min()})")
            if col.max is not None and (values > col.max).any():
                problems.append(f"{name}.{col.name}: above {col.max} (max {values.max()})")
            if col.allowed is not None and not values.is_in(list(col.allowed)).all():
                problems.append(f"{name}.{col.name}: values outside {col.allowed}")
            may_be_future = (name, col.name) == ("weather_forecast", "target_date")
            if col.type in ("date", "timestamp") and not may_be_future:
                last = values.cast(pl.Date).max()
                if last is not None and last > end:
                    problems.append(f"{name}.{col.name}: {last} after the last day {end}")
        if "geo_id" in frame.columns and name != "geo" and not set(frame["geo_id"].drop_nulls()) <= geos:
            problems.append(f"{name}: unknown geo_id")
        if "sku_id" in frame.columns and not set(frame["sku_id"]) <= skus:
            problems.append(f"{name}: unknown sku_id")
    return problems


def test_small_world_conforms_to_the_landing_contract(small: World) -> None:
    assert contract_violations(small) == []


def test_default_world_conforms_to_the_landing_contract(default: World) -> None:
    assert contract_violations(default) == []


def test_physical_orderings_hold(small: World) -> None:
    obs = small.tables["weather_observed"]
    fc = small.tables["weather_forecast"]
    for frame in (obs, fc):
        assert (frame["temp_min_c"] <= frame["temp_mean_c"]).all()
        assert (frame["temp_mean_c"] <= frame["temp_max_c"]).all()
    assert (obs["dew_point_c"] <= obs["temp_max_c"]).all()
    assert ((obs["precip_type"] == "none") == (obs["precip_mm"] == 0)).all()
    snowy = obs.filter(pl.col("snowfall_cm") > 0)
    assert snowy.height > 0 and (snowy["temp_mean_c"] < 1.5).all()
    assert (obs.filter(pl.col("storm_category") > 0)["severe_alert"]).all()
    lead = (fc["target_date"] - fc["issue_date"]).dt.total_days()
    assert lead.min() == 0 and lead.max() == small.config.max_lead
    assert fc["issue_date"].max() == small.config.end
    media = small.tables["media_spend"]
    assert (media["clicks"] <= media["impressions"]).all()
    assert media.filter(pl.col("channel") == "tv")["attributed_revenue"].null_count() > 0
    sales = small.tables["sales"]
    assert ((sales["pos_revenue"] + sales["online_revenue"] - sales["revenue"]).abs() < 0.011).all()
    assert (sales["orders"] <= sales["units"]).all()
    assert (sales["new_customers"] + sales["returning_customers"] == sales["orders"]).all()
    assert (sales["cogs"] < sales["revenue"]).mean() > 0.95
    assert set(sales["category_l1"]) == set(small.tables["products"]["category_l1"])
    executed = small.tables["allocator_plans"].filter(pl.col("status") == "executed")["plan_id"]
    assert set(media["plan_id"].drop_nulls()) <= set(executed)


def test_same_seed_gives_the_same_world_and_another_seed_does_not(small: World) -> None:
    again = simulate(SMALL)
    assert again.truth == small.truth
    assert all(again.tables[name].equals(small.tables[name]) for name in small.tables)
    other = simulate(WorldConfig(seed=4, n_geos=9, n_days=180, start=FIRST_DAY))
    assert not other.tables["sales"].equals(small.tables["sales"])
    assert not other.tables["weather_observed"].equals(small.tables["weather_observed"])


def test_by_default_the_world_ends_yesterday() -> None:
    config = WorldConfig(n_geos=3, n_days=60)
    assert config.end == dt.date.today() - dt.timedelta(days=1)
    assert config.start == config.end - dt.timedelta(days=59)
    world = simulate(config)
    assert world.truth["meta"]["config"]["start"] == config.start.isoformat()
    assert world.tables["sales"]["date"].max() == config.end


def test_impossible_worlds_are_refused() -> None:
    for bad in (
        {"n_geos": 2},
        {"n_days": 30},
        {"n_skus": 4},
        {"max_lead": 0},
        {"max_lead": 15},
        {"bid_reaction": -1.0},
    ):
        with pytest.raises(ValueError):
            WorldConfig(**bad)


def test_bids_follow_the_day_ahead_forecast_as_hard_as_configured() -> None:
    """`bid_reaction` scales every campaign's reaction to the lead-1 forecast: at 0 delivery is the
    plan, and a campaign with a mild reaction (prospecting social) moves with the forecast in proportion,
    up to the bids' cap of e^0.5."""
    j = [c.campaign_id for c in CAMPAIGNS].index("social_prospecting")
    spread = {}
    for k in (0.0, 1.0, 4.0):
        model = build_model(dataclasses.replace(SMALL, bid_reaction=k))
        media = model.media
        plan = (media.planned * media.pacing * ~media.frozen)[..., j]
        live = plan > 0
        log_ratio = np.log(media.delivered(model.weather.drivers())[..., j][live] / plan[live])
        spread[k] = log_ratio.std()
        assert np.abs(log_ratio).max() <= 0.5
    assert spread[0.0] == 0.0
    # the cap bends the strongest bids, so four times the reaction spreads spend by a little less
    assert 2.5 * spread[1.0] < spread[4.0] < 4.0 * spread[1.0]


def _panel(
    observed: pl.DataFrame,
    forecast: pl.DataFrame,
    variable: str,
    leads: tuple[int, ...],
    revenue: pl.DataFrame | None = None,
) -> dict[str, np.ndarray]:
    """(G, T) arrays of the observed variable, its forecasts at `leads` and (optionally) revenue."""
    frame = observed.select("geo_id", "date", variable)
    if revenue is not None:
        frame = frame.join(revenue.group_by("geo_id", "date").agg(pl.col("revenue").sum()), on=["geo_id", "date"])
    lead = (pl.col("target_date") - pl.col("issue_date")).dt.total_days()
    for k in leads:
        one = forecast.filter(lead == k).select(
            "geo_id", pl.col("target_date").alias("date"), pl.col(variable).alias(f"f{k}")
        )
        frame = frame.join(one, on=["geo_id", "date"])
    frame = frame.sort("geo_id", "date")
    n_geos = frame["geo_id"].n_unique()
    return {c: frame[c].to_numpy().reshape(n_geos, -1) for c in frame.columns if c not in ("geo_id", "date")}


def _two_way_demean(a: np.ndarray) -> np.ndarray:
    """Geo and date fixed effects on a balanced panel."""
    return a - a.mean(axis=1, keepdims=True) - a.mean(axis=0, keepdims=True) + a.mean()


@pytest.fixture(scope="module")
def large_weather() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Weather alone for 96 geos: enough data that a correlation of 0.05 is far outside sampling noise,
    even for heavy-tailed precipitation."""
    config = WorldConfig(n_geos=96, start=FIRST_DAY)
    weather = simulate_weather(config, build_timeline(config), build_geography(config))
    return weather.observed_table(), weather.forecast_table()


@pytest.mark.parametrize("variable", ["temp_mean_c", "precip_mm"])
def test_forecasts_are_efficient(large_weather: tuple[pl.DataFrame, pl.DataFrame], variable: str) -> None:
    leads = tuple(range(DEFAULT.max_lead + 1))
    panel = _panel(*large_weather, variable, leads)
    observed = panel[variable]
    sds = []
    for lead in leads:
        forecast = panel[f"f{lead}"]
        error = observed - forecast
        assert abs(np.corrcoef(error.ravel(), forecast.ravel())[0, 1]) < 0.05, lead
        assert abs(error.mean()) < 0.05 * error.std(), lead
        sds.append(error.std())
    assert all(a < b for a, b in itertools.pairwise(sds)), sds
    error_1 = _two_way_demean(observed - panel["f1"])
    assert np.corrcoef(error_1.ravel(), _two_way_demean(observed).ravel())[0, 1] > 0.2


def test_forecast_busts_persist_and_storms_are_uncertain_far_ahead(
    large_weather: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    observed, forecast = large_weather
    max_lead = DEFAULT.max_lead
    temp = _panel(observed, forecast, "temp_mean_c", (1,))
    error = temp["temp_mean_c"] - temp["f1"]
    lag1 = np.mean([np.corrcoef(e[1:], e[:-1])[0, 1] for e in error])
    assert 0.3 < lag1 < 0.9, lag1
    precip = _panel(observed, forecast, "precip_mm", (1, max_lead))
    frame = observed.sort("geo_id", "date")
    storm = frame["storm_category"].to_numpy().reshape(precip["precip_mm"].shape) > 0
    near = np.abs(precip["precip_mm"] - precip["f1"])[storm]
    far = np.abs(precip["precip_mm"] - precip[f"f{max_lead}"])[storm]
    assert storm.sum() > 100 and np.median(far) > 3 * np.median(near), (np.median(near), np.median(far))


def test_daily_means_of_40_degrees_only_in_hot_dry_geos(large_weather: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    geo = build_geography(WorldConfig(n_geos=96, start=FIRST_DAY))
    zone = dict(zip(geo.ids, (ZONES[z].name for z in geo.zone_idx), strict=True))
    hot = large_weather[0].filter(pl.col("temp_mean_c") >= 40.0)
    assert hot.height > 0 and set(hot["geo_id"].replace_strict(zone)) == {"hot_dry"}


def test_counterfactual_truth_is_consistent(small: World) -> None:
    truth = small.truth
    total = truth["meta"]["total_revenue"]
    channels = truth["channels"]
    media = small.tables["media_spend"].group_by("channel").agg(pl.col("spend").sum())
    table_spend = dict(zip(media["channel"], media["spend"], strict=True))
    assert sum(c["incremental_revenue"] for c in channels.values()) < total
    assert {c["channel_group"] for c in channels.values()} == {"brand", "performance"}
    assert {c["adstock"] for c in channels.values()} == {"geometric", "delayed", "weibull"}
    size = truth["meta"]["geo_size_factor"]
    for name, c in channels.items():
        assert c["roas"] == pytest.approx(c["incremental_revenue"] / c["spend"], rel=1e-3)
        assert c["spend"] == pytest.approx(table_spend[name], rel=1e-4)
        assert c["incremental_revenue"] > 0 and c["mroas"] > 0 and c["roas_oracle_se"] > 0
        assert c["incremental_margin"] < c["incremental_revenue"]
        assert (c["platform_attribution_ratio"] is None) == (name == "tv")
        params = c["params"]
        assert sum(params["adstock_weights"]) == pytest.approx(1, abs=1e-4) and c["adstock"] == params["form"]
        per_size = [k / size[g] for g, k in params["half_saturation_by_geo"].items()]
        assert max(per_size) > 1.2 * min(per_size), name  # geos saturate differently beyond their size
    baseline = truth["baseline"]
    assert baseline["revenue_without_media"] + baseline["media_incremental_revenue"] == pytest.approx(total)
    assert 0.05 < baseline["media_share_of_revenue"] < 0.3
    assert truth["stockouts"]["lost_revenue"] > 0
    promotions = truth["promotions"]
    assert promotions["promo_day"]["mean_effect_per_geo_category_day"] > 0
    assert promotions["pre_promotion_dip"]["mean_effect_per_geo_category_day"] < 0
    assert promotions["post_promotion_hangover"]["mean_effect_per_geo_category_day"] < 0
    assert json.loads(json.dumps(truth)) == truth


def test_one_channel_loses_money_and_tv_peaks_late(default: World) -> None:
    channels = default.truth["channels"]
    losers = [name for name, c in channels.items() if c["roas"] < 0.5]
    assert len(losers) == 1 and channels[losers[0]]["mroas"] < 1, {n: c["roas"] for n, c in channels.items()}
    assert np.argmax(channels["tv"]["params"]["adstock_weights"]) >= 3
    assert np.argmax(channels["online_video"]["params"]["adstock_weights"]) >= 2


def test_shocks_leave_comparison_geos_and_avoid_calendar_changes(default: World) -> None:
    shocks = default.truth["shocks"]
    obs = default.tables["weather_observed"]
    config = default.config
    geo = build_geography(config)
    zone_of = dict(zip(geo.ids, geo.zone_idx, strict=True))
    changes = calendar_changes(build_timeline(config), geo)
    before, after = SHOCK_CALENDAR_MARGIN
    assert {s["type"] for s in shocks} == {"storm", "heatwave"} and len(shocks) >= 8
    for s in shocks:
        (zone,) = {zone_of[g] for g in s["geo_ids"]}
        assert sum(z == zone for z in zone_of.values()) - len(s["geo_ids"]) >= 2
        start, end = dt.date.fromisoformat(s["start"]), dt.date.fromisoformat(s["end"])
        first, last = (start - config.start).days, (end - config.start).days
        assert not changes[first - before : last + after + 1].any(), s["event_id"]
        window = obs.filter(pl.col("geo_id").is_in(s["geo_ids"]) & pl.col("date").is_between(start, end))
        assert window["severe_alert"].all()
        assert (s["att_per_geo_day"] < 0) if s["type"] == "storm" else (s["att_per_geo_day"] > 0)
        assert s["incremental_revenue"] == pytest.approx(s["att_per_geo_day"] * window.height, rel=1e-3)


@pytest.mark.parametrize("world", ["small", "default"])
def test_experiments_are_paired_randomised_and_recorded(world: str, request: pytest.FixtureRequest) -> None:
    w: World = request.getfixturevalue(world)
    truth, table, media = w.truth["experiments"], w.tables["experiments"], w.tables["media_spend"]
    assert len(truth) >= 3 and len({e["channel"] for e in truth}) >= 2
    assert {e["design"] for e in truth} == {"holdout", "matched_market", "spend_up"}
    windows = sorted((e["pre_period_start"], e["start"], e["end"]) for e in truth)
    assert all(a[2] < b[0] for a, b in itertools.pairwise(windows))  # one after another, each with its pre-period
    for e in truth:
        rows = table.filter(pl.col("experiment_id") == e["experiment_id"])
        assert set(rows["channel"]) == {e["channel"]} and set(rows["experiment_type"]) == {e["experiment_type"]}
        treated, control = set(e["treated_geo_ids"]), set(e["control_geo_ids"])
        assert treated == set(rows.filter("is_treatment")["geo_id"]) and control == set(
            rows.filter(~pl.col("is_treatment"))["geo_id"]
        )
        assert {t for t, _ in e["pairs"]} == treated and {c for _, c in e["pairs"]} == control
        start, end = dt.date.fromisoformat(e["start"]), dt.date.fromisoformat(e["end"])
        assert (dt.date.fromisoformat(e["start"]) - dt.date.fromisoformat(e["pre_period_start"])).days == (
            end - start
        ).days + 1
        in_window = media.filter((pl.col("channel") == e["channel"]) & pl.col("date").is_between(start, end))
        treated_spend = in_window.filter(pl.col("geo_id").is_in(list(treated)))["spend"].sum()
        assert in_window.filter(pl.col("geo_id").is_in(list(control)))["spend"].sum() > 0
        assert (rows.filter(~pl.col("is_treatment"))["spend_delta"] == 0).all()
        assert rows["spend_delta"].sum() == pytest.approx(e["spend_delta"], rel=1e-6)
        if e["spend_multiplier"] == 0:
            assert treated_spend == 0 and e["true_lift"] < 0 and e["experiment_type"] in ("holdout", "geo_split")
        else:
            assert e["spend_delta"] == pytest.approx((1 - 1 / e["spend_multiplier"]) * treated_spend, rel=1e-3)
            assert e["true_lift"] > 0 and e["experiment_type"] == "geo_split"


def test_platforms_credit_what_they_see(year: World) -> None:
    attributed = dict(
        year.tables["media_spend"].group_by("channel").agg(pl.col("attributed_revenue").sum()).iter_rows()
    )
    truth = {name: c["incremental_revenue"] for name, c in year.truth["channels"].items()}
    assert attributed["tv"] is None or attributed["tv"] == 0
    for channel in ("search", "display"):  # clicks of people who were buying anyway
        assert attributed[channel] > 1.5 * truth[channel], channel
    for channel in ("online_video", "audio"):  # few clicks, views mostly unseen
        assert attributed[channel] < 0.5 * truth[channel], channel


TINY = WorldConfig(seed=5, n_geos=6, n_days=120, start=FIRST_DAY)


def _read(path: Path, table: str) -> pl.DataFrame:
    if path.suffix == ".csv":
        return pl.read_csv(path, schema=schema(table))
    return pl.read_parquet(path)


def test_write_landing_writes_monthly_files_that_round_trip(tmp_path: Path) -> None:
    world = simulate(TINY)
    contract = load_contract()
    parquet = write_landing(world, tmp_path / "parquet", "parquet")
    csv = write_landing(world, tmp_path / "csv", "csv")
    mixed = write_landing(world, tmp_path / "mixed", "mixed")
    assert json.loads((tmp_path / "parquet" / "truth.json").read_text()) == world.truth
    assert {p.suffix for p in mixed} == {".csv", ".parquet", ".json"}
    assert all(p.suffix == ".csv" for p in mixed if p.parent.name in ("calendar", "macro", "operations", "digital"))
    for name, frame in world.tables.items():
        column = contract.tables[name].partition_column
        names = sorted(p.name for p in parquet if p.parent.name == name)
        if column is None:
            assert names == [f"{name}.parquet"]
        else:
            months = sorted(set(frame[column].dt.strftime("%Y-%m")))
            assert names == [f"{name}_{m}.parquet" for m in months]
        for written in (parquet, csv):
            files = sorted(p for p in written if p.parent.name == name)
            assert pl.concat([_read(p, name) for p in files]).equals(frame), name
    assert len(csv) == len(parquet)
    with pytest.raises(ValueError):
        write_landing(world, tmp_path / "bad", "xlsx")


def test_write_landing_is_byte_deterministic(tmp_path: Path) -> None:
    for file_format in ("parquet", "csv"):
        first = write_landing(simulate(TINY), tmp_path / f"a_{file_format}", file_format)
        second = write_landing(simulate(TINY), tmp_path / f"b_{file_format}", file_format)
        assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
