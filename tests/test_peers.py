"""The peers of the backtest (LightweightMMM, Robyn): the subprocess protocol with a fake runner
(forecasts summed into the fold's periods and scored like every model, a backend that cannot run
gets a row saying why, never a crash), the comparison table, and both real peers on a small
simulated world's 90 days when `make peers` has built their environments (skipped, saying so,
when it has not).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from test_backtest import fold_of, loglog_panel
from test_mmm_recovery import build_world_warehouse

from mmm_platform.mmm.config import ConfigError, load_config
from mmm_platform.report.sources import truth_roas
from mmm_platform.validate.backtest import (
    BacktestConfig,
    FoldData,
    backtest_end,
    load_backtest_config,
    load_folds,
    make_folds,
    parse_backtest_config,
    peer_forecast,
    run_backtest,
    score,
    split,
)
from mmm_platform.validate.peers import (
    BUILT,
    PEERS,
    Backend,
    PeerData,
    PeerError,
    PeersConfig,
    comparison,
    run_peer,
    to_periods,
)

#: a runner in the main environment that plays a peer: every horizon day forecast at the mean
#: training day, each channel's ROAS its spend share times 2 (draws around it)
FAKE = """
import json, sys
from pathlib import Path
import numpy as np, pandas as pd
folder = Path(sys.argv[1])
spec = json.loads((folder / "spec.json").read_text())
mode = spec["settings"].get("mode", "ok")
if mode == "fail":
    print("loading the model", file=sys.stderr)
    raise SystemExit("ValueError: the fake peer cannot fit")
if mode == "slow":
    import time; time.sleep(60)
train, future = pd.read_csv(folder / "train.csv"), pd.read_csv(folder / "future.csv")
level = train["revenue"].mean()
rng = np.random.default_rng(spec["seed"])
draws = level * (1 + 0.01 * rng.standard_normal((spec["draws"], len(future))))
spend = train[spec["channels"]].sum()
roas = {c: (2 * spend[c] / spend.sum() + 0.1 * rng.standard_normal(50)).tolist() for c in spec["channels"]}
out = {"draws": draws.tolist(), "fitted": [level] * len(train), "roas": roas, "info": {"controls": spec["controls"]}}
if mode == "nan":
    out["fitted"][0] = float("nan")
(folder / "result.json").write_text(json.dumps(out))
"""


def fake_peers(tmp: Path, **modes: str) -> PeersConfig:
    """The shipped peers' settings, both played by FAKE in an 'environment' whose python runs this
    interpreter."""
    env = tmp / "env"
    (env / "bin").mkdir(parents=True, exist_ok=True)
    python = env / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (env / BUILT).touch()
    runner = tmp / "fake_peer.py"
    runner.write_text(FAKE)
    backends = {
        name: Backend(env=str(env), runner=str(runner), timeout_s=120, settings={"mode": modes.get(name, "ok")})
        for name in PEERS
    }
    return load_backtest_config().peers.model_copy(update=backends)


def national(n_train: int, horizon: pd.DatetimeIndex, channels: list[str], seed: int = 0) -> PeerData:
    """National days: `n_train` before the horizon's first day, then the horizon's."""
    rng = np.random.default_rng(seed)
    days = pd.date_range(horizon[0] - pd.Timedelta(days=n_train), periods=n_train + len(horizon), freq="D")
    frame = pd.DataFrame({"date": days, "revenue": 1000 + 50 * rng.standard_normal(len(days))})
    for c in channels:
        frame[c] = rng.gamma(2.0, 100.0, len(days))
    frame["temp_mean_c"] = rng.normal(15, 5, len(days))
    train = frame.iloc[:n_train].reset_index(drop=True)
    future = frame.iloc[n_train:].drop(columns="revenue").reset_index(drop=True)
    return PeerData(train, future, channels, ["temp_mean_c"], {})


@pytest.fixture
def fold_with_peers():
    """A weekly synthetic fold (3 geos, 4 horizon weeks) with 90 national days for the peers."""
    full = loglog_panel(noise=0.02)
    fold = fold_of(full)
    train, future, actual = split(full, fold)
    days = pd.date_range(fold.test_start, fold.test_end, freq="D")
    return FoldData(fold, train, future, None, national(90, days, train.channels)), actual


# --- configuration ------------------------------------------------------------------------------


def test_the_shipped_configuration_runs_both_peers_on_90_days():
    cfg = load_backtest_config()
    assert cfg.peer_models == ["lightweight_mmm", "robyn"] and cfg.peers.window_days == 90
    assert cfg.peers.lightweight_mmm.env == ".venv-peers/lightweight_mmm"
    assert cfg.peers.robyn.runner == "peers/robyn/run.py"
    assert all(cfg.peers.backend(n).path(cfg.peers.backend(n).runner).is_file() for n in PEERS)
    with pytest.raises(ConfigError, match=r"peers\.robyn\.timeout\b.*unknown key"):
        parse_backtest_config({"peers": {"robyn": {"env": "x", "runner": "y", "timeout": 5}}})
    with pytest.raises(ConfigError, match=r"peers\.window_days"):
        parse_backtest_config({"peers": {"window_days": 7}})
    with pytest.raises(ConfigError, match=r"peers\.controls\.0.*sessions.*post-treatment"):
        parse_backtest_config({"peers": {"controls": [{"name": "visits", "expr": "sessions"}]}})


# --- the protocol, with a fake runner -----------------------------------------------------------


def test_a_peer_is_scored_like_every_model_on_the_fold_s_periods(tmp_path, fold_with_peers):
    data, actual = fold_with_peers
    cfg = BacktestConfig(models=["placeholder", *PEERS], peers=fake_peers(tmp_path))
    from mmm_platform.validate.backtest import Loaded

    rows, predictions = run_backtest([Loaded(data.fold, data, actual)], cfg)
    got = rows.set_index("model")
    assert list(got["status"]) == ["ok", "ok", "ok"]
    # the fake forecasts every day at the mean training day: a week is 7 of them, national
    level = data.peer.train["revenue"].mean()
    want = np.mean(np.abs(7 * level - actual.sum(axis=1)) / actual.sum(axis=1))
    for name in PEERS:
        assert got.loc[name, "mape"] == pytest.approx(want, rel=0.02)
        rev = data.peer.train["revenue"]
        assert got.loc[name, "periods"] == 4 and got.loc[name, "mape_train"] == pytest.approx(
            ((level - rev).abs() / rev).mean()
        )
        assert np.isnan(got.loc[name, "mape_geo"]) and np.isnan(got.loc[name, "interval_coverage_geo"])
    assert np.isfinite(got.loc["placeholder", "mape_geo"])
    assert set(predictions["model"]) == {"actual", "placeholder", *PEERS}


def test_a_backend_that_cannot_run_gets_a_row_saying_why(tmp_path, fold_with_peers):
    data, actual = fold_with_peers
    from mmm_platform.validate.backtest import Loaded

    missing = PeersConfig(lightweight_mmm=Backend(env=str(tmp_path / "nowhere"), runner="peers/lightweight_mmm/run.py"))
    cfg = BacktestConfig(models=["placeholder", "lightweight_mmm"], peers=missing)
    rows, _ = run_backtest([Loaded(data.fold, data, actual)], cfg)
    status = rows.set_index("model")["status"]
    assert status["placeholder"] == "ok"
    assert status["lightweight_mmm"] == f"environment {tmp_path / 'nowhere'} missing: run `make peers`"

    peers = fake_peers(tmp_path, lightweight_mmm="fail", robyn="nan")
    rows, _ = run_backtest([Loaded(data.fold, data, actual)], BacktestConfig(models=list(PEERS), peers=peers))
    status = rows.set_index("model")["status"]
    assert status["lightweight_mmm"] == "lightweight_mmm failed (exit 1): ValueError: the fake peer cannot fit"
    assert status["robyn"] == "robyn returned no draws or empty or non-finite values for fitted"
    assert rows["mape"].isna().all()

    slow = fake_peers(tmp_path, robyn="slow")
    slow = slow.model_copy(update={"robyn": slow.robyn.model_copy(update={"timeout_s": 10})})
    start = time.perf_counter()
    with pytest.raises(PeerError, match=r"robyn ran past its timeout of 10 s \(peers\.robyn\.timeout_s\)"):
        run_peer("robyn", data.peer, slow, draws=50, seed=0)
    assert time.perf_counter() - start < 50


def test_the_runner_sees_the_fold_s_days_and_nothing_of_the_horizon_s_revenue(tmp_path, fold_with_peers):
    data, _ = fold_with_peers
    spy = tmp_path / "spy.py"
    spy.write_text(
        textwrap.dedent(
            """
            import json, shutil, sys
            from pathlib import Path
            folder = Path(sys.argv[1])
            shutil.copytree(folder, Path(__file__).parent / "seen")
            raise SystemExit("seen")
            """
        )
    )
    peers = fake_peers(tmp_path)
    peers = peers.model_copy(update={"robyn": peers.robyn.model_copy(update={"runner": str(spy)})})
    with pytest.raises(PeerError, match="seen"):
        run_peer("robyn", data.peer, peers, draws=60, seed=3)
    seen = tmp_path / "seen"
    train, future = pd.read_csv(seen / "train.csv"), pd.read_csv(seen / "future.csv")
    spec = json.loads((seen / "spec.json").read_text())
    assert len(train) == 90 and len(future) == 28 and "revenue" not in future
    assert list(train.columns) == ["date", "revenue", "tv", "search", "temp_mean_c"]
    assert train["date"].iloc[-1] == data.fold.train_end.isoformat()
    assert spec == {
        "model": "robyn",
        "channels": ["tv", "search"],
        "controls": ["temp_mean_c"],
        "draws": 60,
        "seed": 3,
        "settings": {"mode": "ok"},
    }


def test_days_are_summed_into_whole_periods_only():
    starts = pd.DatetimeIndex(["2025-06-02", "2025-06-09"])
    days = pd.Series(pd.date_range("2025-06-02", periods=14, freq="D"))
    daily = np.arange(28.0).reshape(2, 14)
    np.testing.assert_allclose(to_periods(daily, days, starts, 7), [[21, 70], [119, 168]])
    with pytest.raises(PeerError, match="do not tile"):
        to_periods(daily[:, :13], days[:13], starts, 7)


def test_the_comparison_sets_each_peer_beside_the_truth(tmp_path, fold_with_peers):
    data, _ = fold_with_peers
    peers = fake_peers(tmp_path)
    result = run_peer("lightweight_mmm", data.peer, peers, draws=100, seed=0)
    dropped = PeerData(data.peer.train, data.peer.future, data.peer.channels, [], {"radio": "no spend in the 90 days"})
    table = comparison(
        data.fold.train_end,
        "no refit for week 2025-05-26: materialize mmm/fit for it",
        {"lightweight_mmm": result, "robyn": "environment .venv-peers/robyn missing: run `make peers`"},
        dropped,
        {"tv": 1.5, "search": 3.0},
        0.9,
    )
    assert table["model"].tolist() == ["mmm", "lightweight_mmm", "lightweight_mmm", "lightweight_mmm", "robyn"]
    lw = table[(table["model"] == "lightweight_mmm") & (table["status"] == "ok")].set_index("channel")
    spend = data.peer.train[["tv", "search"]].sum()
    for c in ("tv", "search"):
        assert lw.loc[c, "roas"] == pytest.approx(2 * spend[c] / spend.sum(), abs=0.05)
        assert lw.loc[c, "roas_lower"] < lw.loc[c, "roas"] < lw.loc[c, "roas_upper"]
        assert lw.loc[c, "spend"] == pytest.approx(spend[c]) and lw.loc[c, "window_days"] == 90
    assert lw["true_roas"].tolist() == [1.5, 3.0]
    status = table.set_index(["model", "channel"], drop=False)["status"]
    assert status["lightweight_mmm", "radio"] == "no spend in the 90 days"
    assert table.loc[table["model"] == "robyn", "status"].item().startswith("environment .venv-peers/robyn missing")
    assert table.loc[table["model"] == "mmm", "status"].item().startswith("no refit for week")
    assert (table["origin"] == data.fold.train_end).all()


# --- both real peers on a small world ----------------------------------------------------------

REAL = {
    "lightweight_mmm": {"chains": 2, "warmup": 300, "samples": 200, "model": "hill_adstock", "degrees_seasonality": 1},
    "robyn": {"iterations": 500, "trials": 1},
}


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """A 4-geo, 240-day world through the marts and its newest fold: 90 days, 28 to forecast."""
    cfg = load_backtest_config()
    missing = [n for n in PEERS if not (cfg.peers.backend(n).path(cfg.peers.backend(n).env) / BUILT).is_file()]
    if missing:
        pytest.skip(f"peer environment(s) {', '.join(missing)} missing under .venv-peers: run `make peers`")
    wh, truth = build_world_warehouse(tmp_path_factory.mktemp("peers_world"), n_geos=4, n_days=240, seed=5)
    with duckdb.connect(str(wh), read_only=True) as con:
        folds = make_folds(backtest_end(con, dt.date(2100, 1, 1)), cfg)[-1:]
        loaded = load_folds(con, load_config(), folds, lambda f: None, cfg.peers)
    return loaded[0], truth, cfg


def test_the_peers_data_are_the_panel_s_geos_and_days_summed(small_world):
    item = small_world[0]
    data = item.data
    assert isinstance(data.peer, PeerData) and data.peer.window_days == 90
    assert data.peer.train["date"].iloc[-1].date() == item.fold.train_end
    weekly = to_periods(
        data.peer.future[data.peer.channels].to_numpy().T, data.peer.future["date"], data.future.dates, 7
    ).T
    np.testing.assert_allclose(weekly, data.future.spend()[:, :, : len(data.peer.channels)].sum(axis=1), rtol=1e-9)
    assert set(data.peer.channels) | set(data.peer.dropped) == set(data.train.channels)


@pytest.mark.parametrize("name", PEERS)
def test_a_real_peer_forecasts_the_held_out_weeks_and_finds_every_channel_s_roas(small_world, name):
    item, truth, cfg = small_world
    peers = cfg.peers.model_copy(update={name: cfg.peers.backend(name).model_copy(update={"settings": REAL[name]})})
    start = time.perf_counter()
    result = run_peer(name, item.data.peer, peers, draws=200, seed=1)
    seconds = time.perf_counter() - start
    fc = peer_forecast(result, item.data)
    got = score(fc, item.actual, 0.9)
    table = comparison(item.fold.train_end, "not fitted here", {name: result}, item.data.peer, truth_roas(truth), 0.9)
    rows = table[(table["model"] == name) & (table["status"] == "ok")]
    print(f"{name}: {seconds:.0f} s, {got}, info {result.info}")
    print(rows[["channel", "roas", "roas_lower", "roas_upper", "true_roas"]].to_string())
    assert np.isfinite(fc.draws).all() and fc.draws.shape == (200, 4, 1)
    # days summed into the wrong weeks or a scaling undone wrongly (x7, x mean) is far above these;
    # LightweightMMM's priors leave its 90-day media effects loose, so its forecast is the weaker
    assert got["mape"] < 0.3 and got["mape_train"] < 0.1
    assert 0 <= got["interval_coverage"] <= 1
    assert set(rows["channel"]) == set(item.data.peer.channels) and len(rows) >= 3
    assert (
        rows[["roas", "roas_lower", "roas_upper"]].notna().all().all()
        and (rows["roas_lower"] <= rows["roas_upper"]).all()
    )
    assert rows["true_roas"].notna().all()
    assert seconds < 300
