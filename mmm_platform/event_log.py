"""The local Dagster instance's event log (deploy/local/dagster.yaml): Dagster's SQLite event log,
storing each batch of events in one transaction per database file, over one open connection to the
index file.

Dagster hands its storage the events of a run over many partitions (one materialization per asset
and month) and the planned events of a run as batches when DAGSTER_EVENT_BATCH_SIZE is set (the CLI
and `make dev` set it). SQLite's own storage then stores them one by one anyway: two connections
and two commits per event, each commit waiting for the disk (7-15 ms measured here), for the 400 or
so materializations of a first load. Stored as one transaction per file, a batch costs one wait;
the index file's connection stays open (no checkpoint per event) and does not wait for the disk.
Nothing else changes: the same files, tables and rows, read by the same code. It replays private
methods of Dagster's SQLite storage (Dagster is pinned in constraints.txt); tests/test_defs.py
checks a run over many months through it.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy
from dagster import Field, StringSource
from dagster._config.config_schema import UserConfigSchema
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._serdes import ConfigurableClassData
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

#: the events SQLite's storage also writes to the index file (cross-run queries)
INDEXED = ASSET_EVENTS | ASSET_CHECK_EVENTS | set(EVENT_TYPE_TO_PIPELINE_RUN_STATUS)


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage that writes a batch in one transaction on the run's file and one on the
    index file, replaying per event what SqliteEventLogStorage.store_event writes; a single event is
    a batch of one (an asset check's event then opens the index file once, not twice)."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        # the index connection of the batch this thread is storing (store_asset_check_event opens
        # its own otherwise, and the lock SQLite's storage takes per connection is not reentrant)
        self._batch = threading.local()
        self._index_db: Engine | None = None
        super().__init__(base_dir, inst_data)

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        # default: where Dagster's own SQLite storage keeps the event log
        return {"base_dir": Field(StringSource, is_required=False, description="default: $DAGSTER_HOME/history/runs")}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> BatchedSqliteEventLogStorage:
        base_dir = config_value.get("base_dir") or os.path.join(os.environ["DAGSTER_HOME"], "history", "runs")
        return cls(base_dir, inst_data=inst_data)

    @contextmanager
    def index_connection(self) -> Iterator[Connection]:
        conn = getattr(self._batch, "conn", None)
        if conn is not None:
            yield conn
            return
        with self._db_lock, self._index_engine().connect() as conn, conn.begin():
            yield conn

    def _index_engine(self) -> Engine:
        """One engine for the index file, its connection kept open between events: closing the last
        connection of a WAL file checkpoints it (7-9 ms measured here), and with synchronous=NORMAL
        a commit does not wait for the disk (WAL keeps the file consistent; a power cut may lose the
        last events). Run files keep Dagster's connection per event: the UI watches them change."""
        if self._index_db is None:
            engine = create_engine(
                self.conn_string_for_shard(INDEX_SHARD_NAME),
                poolclass=QueuePool,
                pool_size=1,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            )
            sqlalchemy.event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA synchronous=NORMAL"))
            if INDEX_SHARD_NAME not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(INDEX_SHARD_NAME)
            self._index_db = engine
        return self._index_db

    def dispose(self) -> None:
        super().dispose()
        if self._index_db is not None:
            self._index_db.dispose()  # closes the index file's connection: SQLite checkpoints it
            self._index_db = None

    def store_event(self, event: EventLogEntry) -> None:
        # a check's event as a batch of one: its index rows in one transaction, not two
        self.store_event_batch([event])

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        by_run: dict[str, list[EventLogEntry]] = defaultdict(list)
        for event in events:
            by_run[event.run_id].append(event)
        for run_id, batch in by_run.items():
            statements = [self.prepare_insert_event(event) for event in batch]
            with self.run_connection(run_id) as conn:
                for statement in statements:
                    conn.execute(statement)
            if not any(event.is_dagster_event and event.dagster_event_type in INDEXED for event in batch):
                continue
            with self.index_transaction() as conn:
                self._batch.conn = conn
                try:
                    for event, statement in zip(batch, statements, strict=True):
                        self._index_rows(conn, event, statement)
                finally:
                    self._batch.conn = None

    def _index_rows(self, conn: Connection, event: EventLogEntry, statement: Any) -> None:
        """What SqliteEventLogStorage.store_event writes to the index file for one event."""
        if not event.is_dagster_event:
            return
        kind = event.dagster_event_type
        if kind in ASSET_EVENTS:
            with db_result(conn, statement) as result:
                event_id = result.inserted_primary_key[0]
            self._store_asset_event_tags(conn, [event], [event_id])
            self._store_asset_event(conn, event, event_id)
        if kind in ASSET_CHECK_EVENTS:
            with db_result(conn, statement) as result:
                event_id = result.inserted_primary_key[0]
            self.store_asset_check_event(event, event_id)
        if kind in EVENT_TYPE_TO_PIPELINE_RUN_STATUS:
            conn.execute(statement)
