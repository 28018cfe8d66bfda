"""Resources: one DuckDB warehouse shared by ingestion, dbt and the models."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from mmm_platform.config import get_settings

#: DuckDB has a single writer: every asset or check that writes to (or reads during writes to)
#: the warehouse runs in this concurrency pool, whose limit is 1 (dagster.yaml).
DUCKDB_POOL = "duckdb_write"


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={"duckdb": DuckDBResource(database=str(get_settings().warehouse))})
