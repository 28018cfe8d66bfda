"""The contract as data: the copy in assets/ matches the shared spec, and the rules it implies."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from mmm_platform.contracts import CONTRACT_PATH, parse_contract
from mmm_platform.quality.suites import load_suite
from mmm_platform.rules import contract_rules

SHARED_SPEC = Path(__file__).resolve().parents[2] / "shared" / "spec" / "landing_contract.yaml"


@pytest.mark.skipif(not SHARED_SPEC.exists(), reason="no ../shared/spec beside this checkout")
def test_contract_copy_matches_the_shared_spec():
    assert CONTRACT_PATH.read_text() == SHARED_SPEC.read_text()


def test_every_table_is_typed_and_partitioned_as_the_contract_says(contract):
    assert len(contract.tables) == 17
    assert contract["weather_forecast"].partition_column == "target_date"
    assert contract["experiments"].partition_column is None
    assert {n for n, t in contract.tables.items() if not t.is_partitioned} == {
        "geo",
        "products",
        "experiments",
    }
    assert contract["sales"].column("revenue").duckdb_type == "DOUBLE"
    assert not contract["creative"].required and contract["sales"].required
    assert [c.name for c in contract["geo"].columns if not c.required] == [
        "competitor_density",
        "store_count",
    ]


def test_rules_follow_the_contract(contract):
    rules = {r.name: r for r in contract_rules(contract["weather_forecast"], dt.date(2020, 1, 1))}
    assert "not_future:issue_date" in rules and "not_future:target_date" not in rules
    lead = rules["lead:target_date"]
    assert (lead.start_column, lead.min, lead.max) == ("issue_date", 0, 14)  # from platform_rules.yaml
    assert rules["range:humidity_pct"].description == "humidity_pct must be between 0 and 100"
    assert "not_null:humidity_pct" not in rules  # optional in forecasts
    assert rules["partition_start:target_date"].start == dt.date(2020, 1, 1)
    assert "finite:temp_mean_c" in rules and "finite:issue_date" not in rules  # every float column
    geo_rules = {r.name for r in contract_rules(contract["geo"])}
    assert "known_geo:geo_id" not in geo_rules and "unique_key" in geo_rules


def test_malformed_contracts_are_refused():
    with pytest.raises(ValueError, match="unknown column types"):
        parse_contract({"tables": {"t": {"key": ["a"], "columns": {"a": {"type": "decimal"}}}}})
    with pytest.raises(ValueError, match="key columns"):
        parse_contract({"tables": {"t": {"key": ["b"], "columns": {"a": {"type": "int"}}}}})
    table = {"tables": {"t": {"key": ["a"], "columns": {"a": {"type": "date"}}}}}
    with pytest.raises(ValueError, match="tables the contract lacks"):
        parse_contract(table, {"tables": {"u": {}}})
    with pytest.raises(ValueError, match="undeclared columns"):
        parse_contract(table, {"tables": {"t": {"future_dates_allowed": ["b"]}}})
    with pytest.raises(ValueError, match="freshness_days"):
        parse_contract(table, {"tables": {"t": {"freshness_days": -3}}})


def test_platform_rules_turn_the_contracts_prose_into_data(contract):
    assert contract["weather_forecast"].future_dates_allowed == ("target_date",)
    assert contract["sales"].future_dates_allowed == () and contract["sales"].lead_days is None
    assert contract["macro"].freshness_days == 45 and contract["governance_events"].freshness_days == 0


def test_expectation_suites_load_and_validate_severity(tmp_path):
    suite = load_suite("media_spend")
    assert [e.name for e in suite.expectations] == ["clicks_not_above_impressions"]
    assert suite.min_coverage == {"planned_spend": 0.5}
    (tmp_path / "t.yaml").write_text("expectations: [{name: x, expectation: E, severity: fatal}]")
    with pytest.raises(ValueError, match="severity"):
        load_suite("t", tmp_path)
