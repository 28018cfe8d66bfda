"""What a user sees, in a real browser (headless Chromium through Playwright): the command line runs
the pipeline on a small simulated world, then the Dagster webserver and daemon start on loopback
against that DAGSTER_HOME, as `make dev` starts them. The test opens the asset graph, an asset's
check results, a causal lift statement and a chart in the asset metadata, and the HTML report;
then it materializes `raw/geo` from its asset page and times that against the same work from the
command line (issue 6: a UI materialization of one raw asset within about twice the CLI's time).

`pytest -m browser tests/test_browser.py` (2.5 to 3 minutes); skipped without a Chromium binary.
Screenshots go to `<tmp_path>/screenshots` and, when MMM_SCREENSHOT_DIR is set, there too; the
times and the folders are printed past pytest's capture.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from dagster_services import BIN, Services, answers, free_port, graphql, wait_until
from playwright.sync_api import Locator, Page, expect, sync_playwright

from mmm_platform.mmm.config import DEFAULT_CONFIG_PATH, load_config
from mmm_platform.quality.checks import CHECKS
from mmm_platform.report.build import build_report, write_report
from mmm_platform.report.sources import read_truth

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
#: Debian's `chromium` (what .ci/run installs), or another distribution's name for it
CHROMIUM_NAMES = ("chromium", "chromium-browser")
#: headless on a closed network: without the background-networking flags Chromium's own connections
#: (updates, sync, field trials) are refused and slow every page
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
#: the webserver's "Join the Dagster community" dialog (shown on loopback, over every page): dismissed
#: in advance, as its Skip button dismisses it
NO_COMMUNITY_DIALOG = "try { localStorage.setItem('communityNux', '\"1\"'); } catch (e) {}"
#: a lift statement as the causal suite writes it (mmm_platform/causal/evidence.py)
LIFT_STATEMENT = re.compile(r"^Weather drove [+-]\$[\d,.]+k? of revenue .*\(95% CI .+, p [=<] [\d.]+\)\.$")
#: on two shared cores a UI run may lag the CLI: the bound is generous, the figures are printed
UI_FACTOR, UI_SLACK_S = 3.0, 20.0
GEO_CHECKS = [spec.name for spec in CHECKS]

RUNS = """
query ($ids: [String!]) {
  runsOrError(filter: {runIds: $ids}) {
    ... on Runs { results { runId status creationTime endTime tags { key value } } }
  }
}"""
LOCATION = """
{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename } } } } }
"""


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        f"no Chromium binary ({' or '.join(CHROMIUM_NAMES)}) on the PATH (.ci/run installs Debian's `chromium`)"
    )


def _runs(port: int, ids: list[str] | None = None) -> list[dict]:
    return graphql(port, RUNS, {"ids": ids})["data"]["runsOrError"]["results"]


class Shots:
    """Screenshots under the test's tmp path and, when MMM_SCREENSHOT_DIR is set, there as well."""

    def __init__(self, tmp_path: Path) -> None:
        self.folders = [tmp_path / "screenshots"]
        if os.environ.get("MMM_SCREENSHOT_DIR"):
            self.folders.append(Path(os.environ["MMM_SCREENSHOT_DIR"]))
        for folder in self.folders:
            folder.mkdir(parents=True, exist_ok=True)

    def take(self, page: Page, name: str, full_page: bool = False) -> None:
        path = self.folders[0] / f"{name}.png"
        # dialogs fade in: the picture shows them as they end up, not half transparent
        page.screenshot(path=path, full_page=full_page, animations="disabled")
        for folder in self.folders[1:]:
            shutil.copyfile(path, folder / path.name)


def _show_markdown(page: Page, key: str) -> Locator:
    """Open the markdown metadata entry `key` of an asset page; the dialog that renders it."""
    page.get_by_role("row").filter(has=page.get_by_text(key, exact=True)).get_by_text("[Show Markdown]").click()
    return page.get_by_role("dialog")


def _check_pages(page: Page, base: str, shots: Shots, statement: str, report: Path) -> None:
    """The asset graph, raw/geo's checks, a lift statement, a chart, and the report's page."""
    # the asset graph: the raw group's nodes, each with its checks' state
    page.goto(f"{base}/locations/mmm_platform/asset-groups/raw")
    geo_node = page.locator("[class*=AssetNode_assetNodeBox]").filter(has=page.locator("[data-tooltip='geo']"))
    expect(geo_node).to_contain_text(f"{len(GEO_CHECKS)} / {len(GEO_CHECKS)} Passed")
    assert page.locator("[class*=AssetNode_assetNodeBox]").count() > 1
    shots.take(page, "1_asset_graph")

    # check results: every check of raw/geo passed in the CLI's run
    page.goto(f"{base}/assets/raw/geo?view=checks")
    for name in GEO_CHECKS:
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    expect(page.get_by_text("Succeeded", exact=True)).to_have_count(len(GEO_CHECKS))
    shots.take(page, "2_checks")

    # a lift statement in causal/lift's metadata
    page.goto(f"{base}/assets/causal/lift")
    expect(_show_markdown(page, "statements")).to_contain_text(statement)
    shots.take(page, "3_lift_statement")

    # a chart: the IV-against-OLS plot of causal/weather_effects, an inline PNG that decodes
    page.goto(f"{base}/assets/causal/weather_effects")
    plot = _show_markdown(page, "plot").locator("img[src^='data:image/png']")
    expect(plot).to_be_visible()
    assert plot.evaluate("img => img.complete && img.naturalWidth") > 0
    shots.take(page, "4_chart")

    # the HTML report, opened from its file as a reader would
    page.goto(report.as_uri())
    expect(page.locator("ul.evidence").first).to_contain_text(statement)
    shots.take(page, "5_report", full_page=True)


def _materialize_from_ui(page: Page, base: str, port: int, services: Services, shots: Shots) -> tuple[float, dict]:
    """raw/geo's asset page -> Materialize, until the run succeeds: seconds from the click, the run."""
    page.goto(f"{base}/assets/raw/geo")
    before = {r["runId"] for r in _runs(port)}
    materialize = page.get_by_role("button").filter(has_text=re.compile(r"^Materialize$"))
    t0 = time.perf_counter()
    materialize.click()
    run_id = wait_until(
        "a run launched from the UI",
        services,
        lambda: next((r["runId"] for r in _runs(port) if r["runId"] not in before), None),
        timeout_s=60,
        every_s=0.2,
    )
    run = wait_until(
        "the UI's run finished",
        services,
        lambda: next((r for r in _runs(port, [run_id]) if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")), None),
        timeout_s=120,
        every_s=0.2,
    )
    ui_s = time.perf_counter() - t0
    assert run["status"] == "SUCCESS", services.tails()
    assert {"key": "dagster/from_ui", "value": "true"} in run["tags"]
    page.goto(f"{base}/runs/{run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    expect(page.get_by_text("Loading run logs")).to_have_count(0)
    expect(page.get_by_text("RUN_SUCCESS").first).to_be_visible()
    shots.take(page, "6_ui_run")
    return ui_s, run


def test_ui_shows_graph_checks_evidence_and_charts_and_materializes_like_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chromium = _chromium()
    t_start = time.perf_counter()
    landing, warehouse, home, reports = (
        tmp_path / "landing", tmp_path / "warehouse" / "warehouse.duckdb", tmp_path / "dagster_home",
        tmp_path / "reports",
    )  # fmt: skip
    env = {
        # partitions start where this world's data starts (tests/conftest.py pins them for in-process tests)
        **{k: v for k, v in os.environ.items() if k != "MMM_PARTITION_START"},
        "DAGSTER_HOME": str(home),
        "MMM_LANDING_DIR": str(landing),
        "MMM_WAREHOUSE": str(warehouse),
        "MMM_REPORT_DIR": str(reports),
        "GX_ANALYTICS_ENABLED": "false",
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",  # as `make dev` runs
        # the processes import this checkout, whatever the environment's install points at
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }

    def cli(*args: str) -> float:
        t0 = time.perf_counter()
        done = subprocess.run([str(BIN / "mmm-platform"), *args], env=env, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return time.perf_counter() - t0

    # the smallest world the simulator makes: two months, too short for an MMM refit, long enough for
    # every raw table, the feature marts and the causal suite (about a minute and a half)
    cli("demo", "--geos", "3", "--days", "60", "--no-refit")
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (statement,) = con.execute(
            "SELECT statement FROM causal.lift WHERE study_id LIKE 'weather_vs_normal%' ORDER BY study_id LIMIT 1"
        ).fetchone()
        # the report's page as asset report/html builds it, without a refit: its MMM sections say what is missing
        report = build_report(
            con,
            until=dt.date.today(),
            truth=read_truth(landing / "truth.json"),
            checks=load_config(DEFAULT_CONFIG_PATH).checks,
            warehouse=str(warehouse),
            run_id="test_browser",
        )
    assert LIFT_STATEMENT.match(statement), statement
    assert {"evidence", "weather"} <= set(report.present) and "roas" in report.missing
    write_report(report.html, reports / "report.html")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    workspace = str(ROOT / "workspace.yaml")
    (tmp_path / "logs").mkdir()
    services = Services(tmp_path / "logs", env, tmp_path)
    shots = Shots(tmp_path)
    try:
        # the webserver launches runs into the instance's queue (QueuedRunCoordinator); the daemon starts them
        services.start("webserver", "dagster-webserver", "-w", workspace, "-h", "127.0.0.1", "-p", str(port))
        services.start("daemon", "dagster-daemon", "run", "-w", workspace)
        wait_until("webserver up", services, lambda: answers(f"{base}/server_info"))
        (location,) = graphql(port, LOCATION)["data"]["workspaceOrError"]["locationEntries"]
        assert location["locationOrLoadError"]["__typename"] == "RepositoryLocation", services.tails()

        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(  # a fresh profile: no state of another run
                tmp_path / "chromium-profile",
                executable_path=chromium,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1600, "height": 1000},
            )
            # two shared cores: a page can take seconds, and the asset graph's check counts load
            # after its nodes (a CI run missed them by Playwright's default 5 s for assertions)
            browser.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)
            browser.add_init_script(NO_COMMUNITY_DIALOG)
            page = browser.new_page()
            try:
                _check_pages(page, base, shots, statement, reports / "report.html")
                ui_s, run = _materialize_from_ui(page, base, port, services, shots)
            except BaseException:
                shots.take(page, "failed")  # what the page showed when the test failed
                raise

        # the same work from the command line, against the same instance and warehouse
        cli_s = cli("ingest", "--full", "--tables", "geo")
    finally:
        services.stop()

    total_s = time.perf_counter() - t_start
    with capsys.disabled():
        print(
            f"\nbrowser test: UI materialization of raw/geo {ui_s:.1f} s from the click to SUCCESS "
            f"(run created -> ended {run['endTime'] - run['creationTime']:.1f} s); CLI "
            f"`mmm-platform ingest --full --tables geo` {cli_s:.1f} s; whole test {total_s:.0f} s\n"
            f"screenshots: {', '.join(str(f) for f in shots.folders)}"
        )
    assert ui_s <= UI_FACTOR * cli_s + UI_SLACK_S, (ui_s, cli_s)
