"""The deployment's configuration (docker-compose.yml, deploy/postgres/) without docker: a throwaway
PostgreSQL cluster, then the code server, the webserver and the daemon as local processes started as
the compose services start them; new weather files land, the `weather_files` sensor requests a run,
the daemon runs it, and the runs, materializations, ticks and pool limit are read back from Postgres.

`pytest -m deploy tests/test_deploy_postgres.py`; skipped without the PostgreSQL server binaries.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import yaml
from dagster_services import BIN, Services, answers, free_port, graphql, wait_until

from mmm_platform.simulate import WorldConfig, simulate, write_landing

pytestmark = pytest.mark.deploy

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "postgres"
WEATHER_TABLES = ("weather_observed", "weather_forecast")


def _pg_bin() -> Path | None:
    """The folder of initdb and pg_ctl: on the PATH (Debian links them from /usr/local/bin), else the
    newest /usr/lib/postgresql/<version>/bin, where Debian's `postgresql` package puts them."""
    found = shutil.which("initdb")
    if found:
        folder = Path(found).resolve().parent
        if (folder / "pg_ctl").exists():
            return folder
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def _server_user() -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the `postgres` user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root, and there is no `postgres` user to run the PostgreSQL server as")
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root, and no `runuser` (util-linux) to run the PostgreSQL server as `postgres`")
    return [runuser, "-u", "postgres", "--"]


def _run(command: list[str], log: Path | None = None) -> None:
    """Run a server tool; on failure, say what it and the server's log (if any) printed."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        server_log = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
        pytest.fail(f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}{done.stderr}{server_log}")


@pytest.fixture
def postgres() -> Iterator[dict[str, str]]:
    """A throwaway cluster with a password, on a free loopback port; yields the DAGSTER_POSTGRES_*
    settings that deploy/postgres/dagster.yaml reads."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on the PATH or in /usr/lib/postgresql/*/bin "
            "(.ci/run installs the Debian package `postgresql`)"
        )
    as_server = _server_user()
    # outside pytest's tmp_path (private to this user): the `postgres` user must reach it, and the
    # server's socket path may not exceed 107 bytes
    base = Path(tempfile.mkdtemp(prefix="mmm-pg-"))
    password, port = secrets.token_hex(8), free_port()
    (base / "pwfile").write_text(password)
    if as_server:
        shutil.chown(base, "postgres")
        shutil.chown(base / "pwfile", "postgres")
    data = base / "data"
    pg_ctl = [*as_server, str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        _run([
            *as_server, str(bindir / "initdb"), "-D", str(data), "-U", "dagster", "--pwfile", str(base / "pwfile"),
            "--auth=scram-sha-256", "-E", "UTF8", "--no-sync",
        ])  # fmt: skip
        _run([
            *pg_ctl, "-l", str(base / "server.log"), "-w", "-t", "60", "start",
            "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off -c synchronous_commit=off",
        ], log=base / "server.log")  # fmt: skip
        con = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", password=password, dbname="postgres")
        con.autocommit = True  # CREATE DATABASE refuses to run in a transaction
        con.cursor().execute("CREATE DATABASE dagster")
        con.close()
        yield {
            "DAGSTER_POSTGRES_HOST": "127.0.0.1",
            "DAGSTER_POSTGRES_PORT": str(port),
            "DAGSTER_POSTGRES_USER": "dagster",
            "DAGSTER_POSTGRES_PASSWORD": password,
            "DAGSTER_POSTGRES_DB": "dagster",
        }
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


START_SENSOR = """
mutation ($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
  }
}"""


def test_sensor_run_is_recorded_in_postgres(postgres: dict[str, str], tmp_path: Path) -> None:
    world, landing, home = tmp_path / "world", tmp_path / "landing", tmp_path / "dagster_home"
    config = WorldConfig(n_geos=3, n_days=60)  # the smallest world the simulator makes
    write_landing(simulate(config), world)
    landing.mkdir()
    shutil.copytree(world / "geo", landing / "geo")  # the weather tables' geo_id must be known
    home.mkdir()
    shutil.copyfile(DEPLOY / "dagster.yaml", home / "dagster.yaml")  # as the compose `init` service does
    grpc_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        **postgres,
        "DAGSTER_HOME": str(home),
        "DAGSTER_GRPC_HOST": "127.0.0.1",
        "DAGSTER_GRPC_PORT": str(grpc_port),
        "MMM_LANDING_DIR": str(landing),
        "MMM_WAREHOUSE": str(tmp_path / "warehouse" / "warehouse.duckdb"),
        "MMM_REPORT_DIR": str(tmp_path / "reports"),
        "MMM_PARTITION_START": str(config.start),
        "GX_ANALYTICS_ENABLED": "false",
        # the processes import this checkout, whatever the environment's install points at
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    workspace = str(DEPLOY / "workspace.yaml")
    (tmp_path / "logs").mkdir()
    services = Services(tmp_path / "logs", env, tmp_path)
    con = psycopg2.connect(
        host="127.0.0.1",
        port=int(postgres["DAGSTER_POSTGRES_PORT"]),
        user=postgres["DAGSTER_POSTGRES_USER"],
        password=postgres["DAGSTER_POSTGRES_PASSWORD"],
        dbname=postgres["DAGSTER_POSTGRES_DB"],
    )
    con.autocommit = True  # every query sees what the services committed since

    def rows(sql: str, *params) -> list[tuple]:
        with con.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def weather_run_done() -> tuple | None:
        done = rows(
            "SELECT run_id, status FROM runs WHERE pipeline_name = 'ingest_weather' "
            "AND status IN ('SUCCESS', 'FAILURE', 'CANCELED')"
        )
        return done[0] if done else None

    try:
        try:
            services.start(
                "code", "dagster", "code-server", "start", "-h", "127.0.0.1", "-p", str(grpc_port),
                "-m", "mmm_platform.definitions", "--location-name", "mmm_platform",
            )  # fmt: skip
            # meanwhile the command line loads geo, recording its run in the same Postgres instance
            cli = subprocess.run(
                [str(BIN / "mmm-platform"), "ingest"], env=env, cwd=tmp_path, capture_output=True, text=True
            )
            assert cli.returncode == 0, cli.stdout + cli.stderr
            health = [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(grpc_port)]
            wait_until(
                "code server healthy", services, lambda: subprocess.run(health, capture_output=True).returncode == 0
            )
            services.start("webserver", "dagster-webserver", "-w", workspace, "-h", "127.0.0.1", "-p", str(web_port))
            services.start("daemon", "dagster-daemon", "run", "-w", workspace)
            for table in WEATHER_TABLES:  # new weather files land
                shutil.copytree(world / table, landing / table)
            wait_until("webserver up", services, lambda: answers(f"http://127.0.0.1:{web_port}/server_info"))
            selector = {
                "repositoryLocationName": "mmm_platform",
                "repositoryName": "__repository__",  # the one repository of a Definitions object
                "sensorName": "weather_files",
            }
            started = graphql(web_port, START_SENSOR, {"selector": selector})["data"]["startSensor"]
            assert started.get("sensorState") == {"status": "RUNNING"}, started
            run_id, status = wait_until("the sensor's run finished", services, weather_run_done)
            assert status == "SUCCESS", services.tails()
        finally:
            services.stop()

        # run storage: the command line's run, then the sensor's (one run: the files' months are contiguous)
        assert rows("SELECT pipeline_name, status FROM runs ORDER BY create_timestamp") == [
            ("ingest", "SUCCESS"),
            ("ingest_weather", "SUCCESS"),
        ]
        tags = dict(rows("SELECT key, value FROM run_tags WHERE run_id = %s", run_id))
        assert tags["dagster/sensor_name"] == "weather_files"
        # event-log storage: one materialization per table and month, from the world's first month
        # to the current one (the last partition; forecasts reach past yesterday)
        days = (config.start + dt.timedelta(days=i) for i in range((dt.date.today() - config.start).days + 1))
        months = sorted({str(d.replace(day=1)) for d in days})
        assert [m for (m,) in rows(
            "SELECT DISTINCT partition FROM event_logs WHERE run_id = %s AND dagster_event_type = "
            "'ASSET_MATERIALIZATION' ORDER BY 1", run_id)] == months  # fmt: skip
        assert rows(
            "SELECT run_id = %s, asset_key, count(*) FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' GROUP BY 1, 2 ORDER BY 1, 2",
            run_id,
        ) == [
            (False, '["ingest", "landing_zone"]', 1),
            (False, '["raw", "geo"]', 1),
            (True, '["raw", "weather_forecast"]', len(months)),
            (True, '["raw", "weather_observed"]', len(months)),
        ]
        # schedule storage: the sensor's state and its tick
        assert rows("SELECT instigator_type, status FROM instigators") == [("SENSOR", "RUNNING")]
        assert ("SUCCESS",) in rows("SELECT status FROM job_ticks")
        # the instance's pool limit, claimed by every step that writes the warehouse
        assert rows('SELECT concurrency_key, "limit" FROM concurrency_limits') == [("duckdb_write", 1)]
    finally:
        con.close()


def test_compose_gives_each_service_what_its_config_reads() -> None:
    """docker cannot run here: check that docker-compose.yml and deploy/postgres/ fit together and
    that the deployment's pool settings are the local ones."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    instance_text = (DEPLOY / "dagster.yaml").read_text()
    workspace_text = (DEPLOY / "workspace.yaml").read_text()
    for service, reads in (("code", instance_text), ("webserver", instance_text + workspace_text),
                           ("daemon", instance_text + workspace_text)):  # fmt: skip
        missing = set(re.findall(r"\{env: (\w+)\}", reads)) - set(compose[service]["environment"])
        assert not missing, f"{service} lacks {missing}"
    workspace = "/app/deploy/postgres/workspace.yaml"
    assert workspace in compose["webserver"]["command"] and workspace in compose["daemon"]["command"]
    assert "/app/deploy/postgres/dagster.yaml" in " ".join(compose["init"]["command"])
    code = compose["code"]["command"]
    assert code[code.index("-p") + 1] == compose["code"]["environment"]["DAGSTER_GRPC_PORT"]
    deployed = yaml.safe_load(instance_text)
    local = yaml.safe_load((ROOT / "deploy" / "local" / "dagster.yaml").read_text())
    assert deployed["concurrency"] == local["concurrency"]
    assert deployed["run_coordinator"] == local["run_coordinator"]
    assert set(deployed["storage"]) == {"postgres"}
