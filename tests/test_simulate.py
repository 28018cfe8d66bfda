"""The demo world: contract conformance, efficient forecasts, a real identification problem, consistent
counterfactual truth, and deterministic landing files."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mmm_platform.contracts import load_contract
from mmm_platform.simulate import World, WorldConfig, simulate, write_landing
from mmm_platform.simulate.frames import schema
from mmm_platform.simulate.geography import build_geography
from mmm_platform.simulate.timeline import build_timeline
from mmm_platform.simulate.weather import simulate_weather

SMALL = WorldConfig(seed=3, n_geos=9, n_days=180)


@pytest.fixture(scope="module")
def small() -> World:
    return simulate(SMALL)


@pytest.fixture(scope="module")
def year() -> World:
    return simulate(WorldConfig(seed=11, n_geos=12, n_days=365))


@pytest.fixture(scope="module")
def default() -> World:
    return simulate(WorldConfig())


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
    other = simulate(WorldConfig(seed=4, n_geos=9, n_days=180))
    assert not other.tables["sales"].equals(small.tables["sales"])
    assert not other.tables["weather_observed"].equals(small.tables["weather_observed"])


def test_impossible_worlds_are_refused() -> None:
    for bad in ({"n_geos": 2}, {"n_days": 30}, {"n_skus": 4}, {"max_lead": 0}, {"max_lead": 15}):
        with pytest.raises(ValueError):
            WorldConfig(**bad)


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
    config = WorldConfig(n_geos=96)
    weather = simulate_weather(config, build_timeline(config), build_geography(config))
    return weather.observed_table(), weather.forecast_table()


@pytest.mark.parametrize("variable", ["temp_mean_c", "precip_mm"])
def test_forecasts_are_efficient(large_weather: tuple[pl.DataFrame, pl.DataFrame], variable: str) -> None:
    leads = tuple(range(WorldConfig().max_lead + 1))
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


def test_ols_on_observed_weather_is_biased_and_forecast_error_iv_recovers_the_truth(default: World) -> None:
    tables = default.tables
    panel = _panel(tables["weather_observed"], tables["weather_forecast"], "temp_mean_c", (1,), tables["sales"])
    y = _two_way_demean(panel["revenue"]).ravel()
    x = _two_way_demean(panel["temp_mean_c"]).ravel()
    z = _two_way_demean(panel["temp_mean_c"] - panel["f1"]).ravel()
    truth = default.truth["weather"]["temp_mean_c"]
    assert default.truth["weather"]["valid_instrument_lead"] == 1
    ols = (x @ y) / (x @ x)
    iv = (z @ y) / (z @ x)
    first_stage = (z @ x) / (z @ z)
    first_stage_f = first_stage**2 * (z @ z) / np.var(x - first_stage * z)
    assert first_stage_f > 100
    assert abs(ols / truth - 1) > 0.25, (ols, truth)
    assert abs(iv / truth - 1) < 0.20, (iv, truth)


def test_counterfactual_truth_is_consistent(small: World) -> None:
    truth = small.truth
    total = truth["meta"]["total_revenue"]
    channels = truth["channels"]
    media = small.tables["media_spend"].group_by("channel").agg(pl.col("spend").sum())
    table_spend = dict(zip(media["channel"], media["spend"], strict=True))
    assert sum(c["incremental_revenue"] for c in channels.values()) < total
    assert {c["channel_group"] for c in channels.values()} == {"brand", "performance"}
    for name, c in channels.items():
        assert c["roas"] == pytest.approx(c["incremental_revenue"] / c["spend"], rel=1e-3)
        assert c["spend"] == pytest.approx(table_spend[name], rel=1e-4)
        assert c["incremental_revenue"] > 0 and c["mroas"] > 0
    brand = [c["adstock_alpha"] for c in channels.values() if c["channel_group"] == "brand"]
    performance = [c["adstock_alpha"] for c in channels.values() if c["channel_group"] == "performance"]
    assert min(brand) > max(performance)
    baseline = truth["baseline"]
    assert baseline["revenue_without_media"] + baseline["media_incremental_revenue"] == pytest.approx(total)
    assert 0.05 < baseline["media_share_of_revenue"] < 0.3
    assert truth["stockouts"]["lost_revenue"] > 0
    promotions = truth["promotions"]
    assert promotions["promo_day"]["mean_effect_per_geo_category_day"] > 0
    assert promotions["pre_promotion_dip"]["mean_effect_per_geo_category_day"] < 0
    assert promotions["post_promotion_hangover"]["mean_effect_per_geo_category_day"] < 0
    assert json.loads(json.dumps(truth)) == truth


def test_shocks_hit_a_subset_of_geos_with_the_recorded_sign(default: World) -> None:
    shocks = default.truth["shocks"]
    obs = default.tables["weather_observed"]
    n_geos = default.config.n_geos
    assert {s["type"] for s in shocks} == {"storm", "heatwave"} and len(shocks) >= 8
    for s in shocks:
        assert 0 < len(s["geo_ids"]) < n_geos
        window = obs.filter(
            pl.col("geo_id").is_in(s["geo_ids"])
            & pl.col("date").is_between(dt.date.fromisoformat(s["start"]), dt.date.fromisoformat(s["end"]))
        )
        assert window["severe_alert"].all()
        assert (s["att_per_geo_day"] < 0) if s["type"] == "storm" else (s["att_per_geo_day"] > 0)
        assert s["incremental_revenue"] == pytest.approx(s["att_per_geo_day"] * window.height, rel=1e-3)


def test_holdout_experiment_is_randomised_and_switches_the_channel_off(small: World) -> None:
    truth = small.truth["experiment"]
    table = small.tables["experiments"]
    treated = set(table.filter("is_treatment")["geo_id"])
    assert treated == set(truth["treated_geo_ids"])
    assert 0.4 <= len(treated) / small.config.n_geos <= 0.6
    start, end = dt.date.fromisoformat(truth["start"]), dt.date.fromisoformat(truth["end"])
    assert 42 <= (end - start).days + 1 <= 56
    in_window = small.tables["media_spend"].filter(
        (pl.col("channel") == truth["channel"]) & pl.col("date").is_between(start, end)
    )
    assert in_window.filter(pl.col("geo_id").is_in(list(treated)))["spend"].sum() == 0
    assert in_window.filter(~pl.col("geo_id").is_in(list(treated)))["spend"].sum() > 0
    assert truth["true_lift"] < 0
    assert (table.filter("is_treatment")["spend_delta"] < 0).all()
    assert (table.filter(~pl.col("is_treatment"))["spend_delta"] == 0).all()
    assert table["spend_delta"].sum() == pytest.approx(truth["spend_delta"], rel=1e-6)


def test_platforms_over_attribute(year: World) -> None:
    attributed = year.tables["media_spend"].group_by("channel").agg(pl.col("attributed_revenue").sum())
    for channel, reported in zip(attributed["channel"], attributed["attributed_revenue"], strict=True):
        if channel != "tv":
            assert reported > year.truth["channels"][channel]["incremental_revenue"], channel


TINY = WorldConfig(seed=5, n_geos=6, n_days=120)


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
