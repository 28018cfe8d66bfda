"""Resources: one DuckDB warehouse shared by ingestion, dbt and the models."""

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from mmm_platform.config import get_settings
from mmm_platform.warehouse import connect

#: DuckDB has a single writer: every asset or check that writes to (or reads during writes to)
#: the warehouse runs in this concurrency pool, whose limit is 1 (deploy/local/dagster.yaml).
DUCKDB_POOL = "duckdb_write"


class WarehouseResource(DuckDBResource):
    """The DuckDB warehouse. With no `database` configured it opens MMM_WAREHOUSE as set when the
    connection opens (not when the definitions load).

    It opens the file with `warehouse.connect`, not DuckDBResource's retry loop: a lock held by
    another process is waited for with a message naming it, and a file that can never open (not
    a DuckDB file, a folder, a read-only file system) fails at once instead of after minutes of
    back-off. Connections run in UTC."""

    database: str = Field(default="", description="DuckDB file; empty: MMM_WAREHOUSE at run time")

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        settings = get_settings()
        con = connect(self.database or settings.warehouse, lock_timeout_s=settings.lock_timeout_s)
        try:
            yield con
        finally:
            con.close()


@dg.definitions
def defs() -> dg.Definitions:
    # one process per run, steps in it one after another: every step writes the one DuckDB file,
    # so a subprocess per step (the default executor) would only add its start-up (12-15 s each)
    return dg.Definitions(resources={"duckdb": WarehouseResource()}, executor=dg.in_process_executor)
