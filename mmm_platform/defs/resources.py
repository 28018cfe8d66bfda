"""Resources: one DuckDB warehouse shared by ingestion, dbt and the models."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from mmm_platform.config import get_settings

#: DuckDB has a single writer: every asset or check that writes to (or reads during writes to)
#: the warehouse runs in this concurrency pool, whose limit is 1 (dagster.yaml).
DUCKDB_POOL = "duckdb_write"


class WarehouseResource(DuckDBResource):
    """The DuckDB warehouse. With no `database` configured it opens MMM_WAREHOUSE as set when the
    connection opens (not when the definitions load), creating its folder on first use."""

    database: str = Field(default="", description="DuckDB file; empty: MMM_WAREHOUSE at run time")

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        path = self.database or str(get_settings().warehouse)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with DuckDBResource(database=path, connection_config=self.connection_config).get_connection() as con:
            yield con


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(resources={"duckdb": WarehouseResource()})
