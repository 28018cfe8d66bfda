"""dbt invoked in the process that runs the Dagster step, not in a subprocess of it.

A dbt subprocess starts Python, imports dbt and loads the project and profile before it builds
anything: about 2.5 s of a new weather day's 4.5 s dbt step, measured here (docs/architecture.md),
while the step's process has already imported dbt (dagster-dbt does). dagster-dbt 0.29 only
starts dbt through `subprocess.Popen` (`DbtCliInvocation.run`), so `DbtThread` is what dagster-dbt
reads of a Popen (`stdout` of dbt's JSON log lines, `wait`, `returncode`, `args`, `send_signal`)
around dbt's own programmatic entry point, `dbtRunner`, on a thread. Everything dagster-dbt builds
on that stream (asset materializations, dbt tests as asset checks, errors) is unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import dagster_dbt.core.resource as dagster_dbt_resource
from dagster_dbt.core.dbt_cli_invocation import DbtCliInvocation

#: dbtRunner's result -> the exit code the `dbt` command gives (0 ok, 1 a node failed, 2 dbt failed)
_EXIT_OK, _EXIT_FAILED, _EXIT_ERROR = 0, 1, 2

#: dbt's stdout log level (its default, what dagster-dbt reads from a subprocess)
_LEVELS = {"info", "warn", "error"}

#: one invocation at a time in a process: dbt's flags and adapters are process-wide
_one_at_a_time = threading.Lock()
#: one swap of dagster-dbt's invocation class at a time (invocations_in_process)
_one_at_a_time_cli = threading.Lock()


@contextlib.contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """`env` (variables, or a whole environment such as dagster-dbt's for an invocation) applied
    to os.environ for a while, since dbt reads its flags and the profile's env_var() from there;
    only the keys that differ are set, and restored afterwards (other threads keep the rest)."""
    changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
    saved = {k: os.environ.get(k) for k in changed}
    os.environ.update(changed)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class DbtThread:
    """A `dbt ...` command line run by dbtRunner on a thread, shaped like the Popen dagster-dbt
    expects."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str]) -> None:
        self.args = list(args)
        self.returncode: int | None = None
        read_fd, write_fd = os.pipe()
        self.stdout: IO[bytes] = os.fdopen(read_fd, "rb")
        self._writer = os.fdopen(write_fd, "wb")
        self._thread = threading.Thread(target=self._invoke, args=(dict(env),), name="dbt", daemon=True)
        self._thread.start()

    def _invoke(self, env: dict[str, str]) -> None:
        from dbt.cli.main import dbtRunner
        from dbt_common.events.functions import msg_to_json

        def emit(msg: Any) -> None:
            if msg.info.level in _LEVELS:
                self._writer.write(msg_to_json(msg).encode() + b"\n")

        code = _EXIT_ERROR
        try:
            with _one_at_a_time, environment(env):
                try:
                    # dbt's own console log off: the callback hands every line to dagster-dbt
                    result = dbtRunner(callbacks=[emit]).invoke([*self.args[1:], "--log-level", "none"])
                finally:
                    _release_warehouse()
            code = _EXIT_OK if result.success else _EXIT_FAILED if result.exception is None else _EXIT_ERROR
            if result.exception is not None:
                self._writer.write(_error_line(result.exception))
        except BaseException as e:  # reported to dagster-dbt as a failed dbt command
            self._writer.write(_error_line(e))
        finally:
            self.returncode = code
            self._writer.close()

    def wait(self, timeout: float | None = None) -> int | None:
        self._thread.join(timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """SIGINT (dagster-dbt's interrupt) as a KeyboardInterrupt in dbt's thread, which dbt
        handles as it handles Ctrl-C: it cancels its open queries and stops."""
        if sig == signal.SIGINT and self._thread.is_alive() and self._thread.ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._thread.ident), ctypes.py_object(KeyboardInterrupt)
            )


def _release_warehouse() -> None:
    """dbt-duckdb keeps its DuckDB connection open for the process's next invocation (its
    `keep_open`, without which every node reopens the file: 0.9 s more for a new day's 25 nodes);
    closed once dbt is done, so that other processes, and this one with other settings (read-only),
    can open the warehouse file, as after a dbt subprocess."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with contextlib.suppress(Exception):  # no environment: dbt never connected
        DuckDBConnectionManager.env().close()
    DuckDBConnectionManager.close_all_connections()


def _error_line(error: BaseException) -> bytes:
    """An error-level line in dbt's JSON log format, which dagster-dbt collects into its error."""
    line = {"info": {"level": "error", "msg": f"{type(error).__name__}: {error}", "name": "MainEncounteredError"}}
    return json.dumps({**line, "data": {}}).encode() + b"\n"


class InProcessInvocation(DbtCliInvocation):
    """dagster-dbt's invocation of a dbt command, with dbt on a thread of this process. Unlike
    dagster-dbt's own `run`, no partial-parse file is copied: every invocation here uses one
    target folder, where dbt keeps it (defs/features/assets.py, TARGET)."""

    @classmethod
    def run(  # type: ignore[override]
        cls,
        args: Sequence[str],
        env: dict[str, str],
        manifest: Mapping[str, Any],
        dagster_dbt_translator: Any,
        project_dir: Path,
        target_path: Path,
        raise_on_error: bool,
        context: Any,
        adapter: Any,
        cli_version: Any,
        dbt_project: Any = None,
    ) -> DbtCliInvocation:
        return cls(
            process=DbtThread(args, env),  # type: ignore[arg-type]
            manifest=manifest,
            project=dbt_project,
            dagster_dbt_translator=dagster_dbt_translator,
            project_dir=project_dir,
            target_path=target_path,
            raise_on_error=raise_on_error,
            context=context,
            adapter=adapter,
            cli_version=cli_version,
        )


@contextlib.contextmanager
def invocations_in_process() -> Iterator[None]:
    """Within: `DbtCliResource.cli` creates `InProcessInvocation`s. dagster-dbt 0.29 names the
    invocation class in its resource module and offers no parameter for it, so the name is
    swapped for the call (tests/test_features_dagster.py checks the hook is still there)."""
    with _one_at_a_time_cli:
        saved = dagster_dbt_resource.DbtCliInvocation
        dagster_dbt_resource.DbtCliInvocation = InProcessInvocation
        try:
            yield
        finally:
            dagster_dbt_resource.DbtCliInvocation = saved
