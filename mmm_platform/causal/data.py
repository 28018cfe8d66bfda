"""What the causal suite reads, in one place: `load_inputs` queries the feature marts (and the few raw
tables the marts do not carry) and returns plain pandas frames; every estimator works on those.

Reads: features.geo_day (outcomes, observed weather, forecast errors at leads 1, 3, 7, storm and alert
flags, anomalies), raw.weather_forecast (errors at the other leads the IV checks need: 0 and 2),
features.geo_cluster, features.geo_neighbors, features.media_channel_day (spend per channel),
raw.experiments, raw.allocator_plans joined to raw.media_spend by plan_id.

`stage_tables` writes a landing zone's tables (a dict of Polars frames, e.g. a simulated world's) into
a DuckDB connection as raw.* plus stand-ins of exactly the mart columns read here, built with the marts'
own definitions (docs/features.md): tests and bench/causal.py run the suite without a dbt build.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import polars as pl

from mmm_platform.causal.config import CausalConfig

#: geo_day columns the suite reads (besides the forecast errors)
PANEL_COLUMNS = (
    "region",
    "population",
    "month",
    "revenue",
    "units",
    "temp_mean_c",
    "precip_mm",
    "temp_mean_anom_c",
    "temp_mean_anom_z",
    "precip_anom_mm",
    "storm_category",
    "severe_alert",
)
#: leads whose forecast errors features.geo_day carries (dbt var forecast_leads)
MART_LEADS = (1, 3, 7)


@dataclass(frozen=True)
class CausalInputs:
    #: one row per geo-day, sorted by geo_id, date: outcomes, weather, forecast errors, cluster_id
    panel: pd.DataFrame
    #: geo_id, cluster_id, region, latitude, longitude, population
    geo: pd.DataFrame
    #: geo_id, neighbor_geo_id, weight (features.geo_neighbors)
    neighbors: pl.DataFrame
    #: geo_id, date, channel, spend
    channel_spend: pd.DataFrame
    #: raw.experiments (with pair_id when the design table carries strata)
    experiments: pd.DataFrame
    #: plan_id, status, created_at, geo_id, date, channel, recommended_spend, spend, executed_rows
    plans: pd.DataFrame

    @property
    def as_of(self) -> dt.date:
        return pd.Timestamp(self.panel["date"].max()).date()


def _has(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    query = "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
    return con.execute(query, [schema, table]).fetchone()[0] > 0


def _columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str]:
    query = "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?"
    return [r[0] for r in con.execute(query, [schema, table]).fetchall()]


def load_inputs(con: duckdb.DuckDBPyConnection, config: CausalConfig) -> CausalInputs:
    variables = config.iv.variables
    mart = set(_columns(con, "features", "geo_day"))
    errors = []
    raw_leads = []
    for lead in config.iv.leads:
        for v in variables:
            name = f"{v}_fc_error_l{lead}"
            if name in mart:
                errors.append(f"g.{name}")
            else:
                raw_leads.append(lead)
                errors.append(f"g.{v} - f.{v}_l{lead} AS {name}")
    raw_leads = sorted(set(raw_leads))
    forecasts = ""
    if raw_leads:
        pivots = ", ".join(
            f"max({v}) FILTER (WHERE datediff('day', issue_date, target_date) = {lead}) AS {v}_l{lead}"
            for lead in raw_leads
            for v in variables
        )
        forecasts = f"""LEFT JOIN (
            SELECT geo_id, target_date AS date, {pivots} FROM raw.weather_forecast
            WHERE datediff('day', issue_date, target_date) IN ({", ".join(map(str, raw_leads))})
            GROUP BY geo_id, target_date) f USING (geo_id, date)"""
    forecast_levels = [f"g.{v}_fc_l1" for v in variables if f"{v}_fc_l1" in mart]
    panel = con.sql(
        f"""SELECT g.geo_id, g.date, {", ".join(f"g.{c}" for c in PANEL_COLUMNS)}, {", ".join(errors)},
                   {", ".join(forecast_levels) or "NULL AS no_forecast"}, c.cluster_id
            FROM features.geo_day g {forecasts}
            LEFT JOIN features.geo_cluster c USING (geo_id)
            ORDER BY g.geo_id, g.date"""
    ).df()
    panel["date"] = pd.to_datetime(panel["date"])
    panel["severe_alert"] = panel["severe_alert"].fillna(False).astype(bool)
    panel["storm_category"] = panel["storm_category"].fillna(0).astype(int)
    panel["cluster_id"] = panel["cluster_id"].fillna(-1).astype(int)
    geo = con.sql(
        """SELECT g.geo_id, coalesce(c.cluster_id, -1) AS cluster_id, g.region, g.latitude, g.longitude,
                  g.population
           FROM raw.geo g LEFT JOIN features.geo_cluster c USING (geo_id) ORDER BY geo_id"""
    ).df()
    neighbors = (
        con.sql("SELECT geo_id, neighbor_geo_id, weight FROM features.geo_neighbors").pl()
        if _has(con, "features", "geo_neighbors")
        else pl.DataFrame(schema={"geo_id": pl.String, "neighbor_geo_id": pl.String, "weight": pl.Float64})
    )
    channel_spend = con.sql(
        "SELECT geo_id, date, channel, spend FROM features.media_channel_day ORDER BY geo_id, date, channel"
    ).df()
    channel_spend["date"] = pd.to_datetime(channel_spend["date"])
    pair = "pair_id" if "pair_id" in _columns(con, "raw", "experiments") else "NULL::VARCHAR AS pair_id"
    experiments = con.sql(
        f"""SELECT experiment_id, experiment_type, geo_id, channel, start_date, end_date, is_treatment,
                   spend_delta, {pair} FROM raw.experiments ORDER BY experiment_id, geo_id"""
    ).df()
    for c in ("start_date", "end_date"):
        experiments[c] = pd.to_datetime(experiments[c])
    plans = con.sql(
        """WITH executed AS (
               SELECT plan_id, geo_id, date, channel, count(*) AS executed_rows
               FROM raw.media_spend WHERE plan_id IS NOT NULL GROUP BY ALL)
           SELECT p.plan_id, p.status, p.created_at, p.geo_id, p.date, p.channel, p.recommended_spend,
                  coalesce(m.spend, 0) AS spend, coalesce(e.executed_rows, 0) AS executed_rows
           FROM raw.allocator_plans p
           LEFT JOIN features.media_channel_day m USING (geo_id, date, channel)
           LEFT JOIN executed e USING (plan_id, geo_id, date, channel)
           ORDER BY p.plan_id, p.geo_id, p.date, p.channel"""
    ).df()
    plans["date"] = pd.to_datetime(plans["date"])
    return CausalInputs(panel, geo, neighbors, channel_spend, experiments, plans)


# ---------------------------------------------------------------------------------------------------
# stand-ins of the marts, for tests and the bench (no dbt build)

_RAW = ("geo", "weather_observed", "weather_forecast", "sales", "media_spend", "experiments", "allocator_plans")


def stage_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, pl.DataFrame], half_window: int = 15) -> None:
    """raw.<T> for the tables the suite reads, and features.* stand-ins with the columns load_inputs
    reads, computed as the marts compute them (climatology +- `half_window` days on a 365-day circle,
    anomalies against it, errors = observed - forecast at leads 1, 3, 7, clusters and neighbours from
    mmm_platform.features)."""
    from mmm_platform.features.climate import climate_profiles, cluster_climates
    from mmm_platform.features.spatial import neighbor_weights

    for schema in ("raw", "features"):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for name in _RAW:
        frame = tables[name]
        con.register("_frame", frame)
        con.execute(f"CREATE OR REPLACE TABLE raw.{name} AS SELECT * FROM _frame")
        con.unregister("_frame")

    def doy(d: str) -> str:  # the marts' macro climatology_doy: 29 Feb shares 28 Feb's slot
        return f"dayofyear(make_date(2001, month({d}), least(day({d}), CASE WHEN month({d}) = 2 THEN 28 ELSE 31 END)))"

    con.execute(
        f"""CREATE OR REPLACE TABLE features.weather_climatology AS
        WITH o AS (SELECT geo_id, year(date) AS year, {doy("date")} AS doy, temp_mean_c, precip_mm, humidity_pct,
                          snowfall_cm FROM raw.weather_observed),
        s AS (SELECT o.* REPLACE (((o.doy - 1 + shift.d + 365) % 365) + 1 AS doy)
              FROM o CROSS JOIN range(-{half_window}, {half_window} + 1) AS shift(d))
        SELECT geo_id, doy, avg(temp_mean_c) AS temp_mean_normal_c, stddev_samp(temp_mean_c) AS temp_mean_sd_c,
               avg(precip_mm) AS precip_normal_mm, avg(humidity_pct) AS humidity_normal_pct,
               avg(snowfall_cm) AS snowfall_normal_cm
        FROM s GROUP BY geo_id, doy"""
    )
    leads = ", ".join(
        f"max({v}) FILTER (WHERE datediff('day', issue_date, target_date) = {lead}) AS {v}_fc_l{lead}"
        for lead in MART_LEADS
        for v in ("temp_mean_c", "precip_mm")
    )
    errors = ", ".join(
        f"w.{v} - f.{v}_fc_l{lead} AS {v}_fc_error_l{lead}, f.{v}_fc_l{lead}"
        for lead in MART_LEADS
        for v in ("temp_mean_c", "precip_mm")
    )
    con.execute(
        f"""CREATE OR REPLACE TABLE features.geo_day AS
        WITH s AS (SELECT geo_id, date, sum(revenue) AS revenue, sum(units) AS units FROM raw.sales
                   WHERE category_l1 <> 'all' OR category_l1 IS NULL GROUP BY ALL),
        f AS (SELECT geo_id, target_date AS date, {leads} FROM raw.weather_forecast GROUP BY ALL)
        SELECT w.geo_id, w.date, g.region, g.population, month(w.date) AS month, s.revenue, s.units,
               w.temp_mean_c, w.precip_mm, w.temp_mean_c - c.temp_mean_normal_c AS temp_mean_anom_c,
               (w.temp_mean_c - c.temp_mean_normal_c) / nullif(c.temp_mean_sd_c, 0) AS temp_mean_anom_z,
               w.precip_mm - c.precip_normal_mm AS precip_anom_mm, w.storm_category, w.severe_alert, {errors}
        FROM raw.weather_observed w
        JOIN s USING (geo_id, date)
        JOIN raw.geo g USING (geo_id)
        LEFT JOIN f USING (geo_id, date)
        LEFT JOIN features.weather_climatology c ON c.geo_id = w.geo_id AND c.doy = {doy("w.date")}
        ORDER BY w.geo_id, w.date"""
    )
    con.execute(
        """CREATE OR REPLACE TABLE features.media_channel_day AS
        SELECT geo_id, date, channel, sum(spend) AS spend, sum(planned_spend) AS planned_spend
        FROM raw.media_spend GROUP BY ALL"""
    )
    climatology = con.sql("SELECT * FROM features.weather_climatology").pl()
    clusters = cluster_climates(climate_profiles(climatology)).assignments
    geo = tables["geo"].select("geo_id", "latitude", "longitude")
    neighbors = neighbor_weights(geo)
    for name, frame in (("geo_cluster", clusters), ("geo_neighbors", neighbors)):
        con.register("_frame", frame)
        con.execute(f"CREATE OR REPLACE TABLE features.{name} AS SELECT * FROM _frame")
        con.unregister("_frame")


def inputs_from_tables(tables: dict[str, pl.DataFrame], config: CausalConfig) -> CausalInputs:
    """The suite's inputs from landing tables, through stand-in marts in an in-memory DuckDB."""
    con = duckdb.connect()
    try:
        stage_tables(con, tables)
        return load_inputs(con, config)
    finally:
        con.close()


def grid(panel: pd.DataFrame, column: str) -> np.ndarray:
    """(G, T) array of a balanced panel's column (rows sorted by geo_id, date)."""
    n_geo = panel["geo_id"].nunique()
    return panel[column].to_numpy(float).reshape(n_geo, -1)
