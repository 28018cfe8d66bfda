"""Ingestion: one asset per landing table (raw/<table>), each with its data-quality checks.

Generated from the landing contract, so a new table in the contract is a new asset here.
"""

import datetime as dt

import dagster as dg
from dagster_duckdb import DuckDBResource

from mmm_platform.config import get_settings
from mmm_platform.contracts import Table, load_contract
from mmm_platform.defs.partitions import PARTITION_TAG, RANGE_END, RANGE_START, daily_partitions
from mmm_platform.defs.resources import DUCKDB_POOL
from mmm_platform.ingest.load import LoadResult, Window, ingest_table
from mmm_platform.quality.checks import CHECKS, CheckContext, CheckSpec, null_coverage

GEO_KEY = dg.AssetKey(["raw", "geo"])


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", table])


def _window(table: Table, start: str, end: str) -> Window:
    """The newest partition also takes later dates (forecasts for days after today)."""
    last = daily_partitions.get_last_partition_key()
    return Window(dt.date.fromisoformat(start), dt.date.fromisoformat(end), open_end=last is not None and end >= last)


def asset_window(context: dg.AssetExecutionContext, table: Table) -> Window | None:
    if not table.is_partitioned:
        return None
    keys = context.partition_key_range
    return _window(table, keys.start, keys.end)


def run_window(context: dg.AssetCheckExecutionContext, table: Table) -> Window | None:
    """The partitions the check's run covers, from the run's tags; the whole table when the run
    targets no partition (a check executed on its own from the UI).

    Checks are not partitioned themselves: a backfill of two years would otherwise record one
    evaluation per day and check (tens of thousands of events) for one validation."""
    tags = context.run.tags
    start = tags.get(RANGE_START) or tags.get(PARTITION_TAG)
    end = tags.get(RANGE_END) or tags.get(PARTITION_TAG)
    if not table.is_partitioned or not start or not end:
        return None
    return _window(table, start, end)


def _metadata(result: LoadResult, coverage: dict[str, float], total_rows: int, latest: dt.date | None) -> dict:
    return {
        "dagster/row_count": dg.MetadataValue.int(total_rows),
        "rows_written": dg.MetadataValue.int(result.rows_written),
        "source_files": dg.MetadataValue.json(result.loaded_from),
        "refused_files": dg.MetadataValue.json({f.file.name: f.reason for f in result.refused}),
        "files_checked": dg.MetadataValue.int(sum(1 for f in result.files if not f.cached)),
        "null_coverage": dg.MetadataValue.json({k: round(v, 4) for k, v in coverage.items()}),
        "freshness_latest_date": dg.MetadataValue.text(str(latest) if latest else "no rows"),
        "seconds": dg.MetadataValue.float(round(result.seconds, 3)),
    }


def build_raw_asset(table: Table) -> dg.AssetsDefinition:
    contract = load_contract()

    @dg.asset(
        key=raw_key(table.name),
        group_name="raw",
        kinds={"duckdb"},
        description=f"Landing table `{table.name}` loaded from MMM_LANDING_DIR/{table.name}/, "
        f"key ({', '.join(table.key)}). Refused files go to ingest.quarantine.",
        partitions_def=daily_partitions if table.is_partitioned else None,
        backfill_policy=dg.BackfillPolicy.single_run() if table.is_partitioned else None,
        deps=[GEO_KEY] if table.references_geo else None,
        metadata={"partition_expr": table.partition_column} if table.is_partitioned else None,
        pool=DUCKDB_POOL,
    )
    def _asset(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.MaterializeResult:
        settings = get_settings()
        window = asset_window(context, table)
        with duckdb.get_connection() as con:
            result = ingest_table(
                con,
                contract,
                table.name,
                settings.landing_dir,
                window=window,
                run_id=context.run_id,
                partition_start=settings.partition_start,
            )
            ctx = CheckContext(con, table, window, dt.date.today(), settings.partition_start, settings.freshness_days)
            coverage = null_coverage(ctx)
            total = con.execute(f'SELECT count(*) FROM raw."{table.name}"').fetchone()[0]
            latest = (
                con.execute(f'SELECT max("{table.partition_column}") FROM raw."{table.name}"').fetchone()[0]
                if table.is_partitioned
                else None
            )
        context.log.info(
            f"raw/{table.name}: {result.rows_written} rows from {len(result.loaded_from)} file(s), "
            f"{len(result.refused)} refused, {result.seconds:.2f}s"
        )
        return dg.MaterializeResult(metadata=_metadata(result, coverage, total, latest))

    return _asset


def build_check(table: Table, spec: CheckSpec) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=raw_key(table.name),
        name=spec.name,
        description=spec.description,
        blocking=spec.blocking,
        pool=DUCKDB_POOL,
    )
    def _check(context: dg.AssetCheckExecutionContext, duckdb: DuckDBResource) -> dg.AssetCheckResult:
        settings = get_settings()
        with duckdb.get_connection() as con:
            outcome = spec.run(
                CheckContext(
                    con,
                    table,
                    run_window(context, table),
                    dt.date.today(),
                    settings.partition_start,
                    settings.freshness_days,
                )
            )
        return dg.AssetCheckResult(
            passed=outcome.passed,
            severity=dg.AssetCheckSeverity.ERROR if outcome.severity == "error" else dg.AssetCheckSeverity.WARN,
            description=outcome.summary,
            metadata={
                "summary": dg.MetadataValue.text(outcome.summary),
                "problems": dg.MetadataValue.md("\n".join(f"- {d}" for d in outcome.details) or "none"),
                **{
                    k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v
                    for k, v in outcome.metadata.items()
                },
            },
        )

    return _check


_tables = list(load_contract().tables.values())
raw_assets = [build_raw_asset(t) for t in _tables]
raw_checks = [build_check(t, spec) for t in _tables for spec in CHECKS]
