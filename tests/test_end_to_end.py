"""The demo world through the command line: simulate, then ingest exactly what landed."""

from __future__ import annotations

import json
import os

import duckdb
import pytest

from mmm_platform.cli import main
from mmm_platform.contracts import load_contract


@pytest.mark.slow
def test_simulated_world_ingests_exactly(monkeypatch, tmp_path):
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("MMM_LANDING_DIR", str(landing))
    monkeypatch.setenv("MMM_WAREHOUSE", str(warehouse))
    assert main(["simulate", "--geos", "4", "--days", "60", "--format", "mixed"]) == 0
    truth = json.loads((landing / "truth.json").read_text())
    assert main(["ingest"]) == 0

    import datetime as dt

    from mmm_platform.simulate import WorldConfig, simulate

    # by default the world ends yesterday: rebuild it from the start date it recorded
    start = dt.date.fromisoformat(truth["meta"]["config"]["start"])
    assert start == dt.date.today() - dt.timedelta(days=60)
    world = simulate(WorldConfig(n_geos=4, n_days=60, start=start))
    assert world.truth == truth
    con = duckdb.connect(str(warehouse), read_only=True)
    for name in load_contract().tables:
        got = con.execute(f'SELECT count(*) FROM raw."{name}"').fetchone()[0]
        assert got == world.tables[name].height, name
    revenue = con.execute("SELECT sum(revenue) FROM raw.sales").fetchone()[0]
    assert revenue == pytest.approx(world.tables["sales"]["revenue"].sum(), rel=1e-12)
    assert con.execute("SELECT count(*) FROM ingest.landing_files WHERE status = 'refused'").fetchone()[0] == 0
    assert os.path.exists(landing / "truth.json")


def test_simulate_takes_the_bid_reaction_and_refuses_an_impossible_world(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MMM_LANDING_DIR", str(tmp_path / "landing"))
    assert main(["simulate", "--geos", "3", "--days", "60", "--bid-reaction", "4"]) == 0
    truth = json.loads((tmp_path / "landing" / "truth.json").read_text())
    assert truth["meta"]["config"]["bid_reaction"] == 4.0
    assert (
        main(["simulate", "--geos", "3", "--days", "60", "--bid-reaction", "-1", "--landing", str(tmp_path / "x")]) == 2
    )
    assert "bid_reaction must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing written
