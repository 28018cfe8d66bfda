"""Every dbt model is documented, and its docs match what its SQL really produces.

dagster-dbt takes a dbt asset's description from the model's `description` (else the placeholder
"dbt model <name>") and the column table of its asset page, `dagster/column_schema`, from the
documented columns and their `data_type`. The docs live in one YAML per model, next to its SQL.
Checked here: every model has a real description and every column a type and a description; the
documented columns are exactly the columns, in order and with their DuckDB types, that each model has
after `dbt run` on the tiny world of test_features_dbt (so a column added to a model's SQL without
docs fails); and the Dagster asset specs carry those docs.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pytest
from test_features_dbt import build_tiny_world, run_dbt

from mmm_platform.defs.features.assets import dbt_features
from mmm_platform.defs.features.project import ensure_manifest

Columns = list[tuple[str, str]]


@pytest.fixture(scope="module")
def models() -> dict[str, dict[str, Any]]:
    """The manifest's models by name."""
    manifest = json.loads(ensure_manifest().read_text())
    return {node["name"]: node for node in manifest["nodes"].values() if node["resource_type"] == "model"}


@pytest.fixture(scope="module")
def relations(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Columns]:
    """(schema, table) -> [(column, DuckDB type)] of every relation `dbt run` makes on the tiny world."""
    path = tmp_path_factory.mktemp("dbt_docs") / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        build_tiny_world(con)
    run_dbt(path, "run")
    with duckdb.connect(str(path)) as con:
        rows = con.execute(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns"
            " WHERE table_schema IN ('staging', 'features') ORDER BY table_schema, table_name, ordinal_position"
        ).fetchall()
    columns: dict[tuple[str, str], Columns] = {}
    for schema, table, column, data_type in rows:
        columns.setdefault((schema, table), []).append((column, data_type.lower()))
    return columns


def documented(node: dict[str, Any]) -> Columns:
    return [(name, (column.get("data_type") or "").lower()) for name, column in node["columns"].items()]


def test_every_model_has_a_real_description(models: dict[str, dict[str, Any]]) -> None:
    assert models
    bad = [name for name, node in models.items() if node["description"].strip() in ("", f"dbt model {name}")]
    assert not bad, f"models without a real description: {bad}"


def test_every_column_has_a_type_and_a_description(models: dict[str, dict[str, Any]]) -> None:
    assert not [name for name, node in models.items() if not node["columns"]], "models without documented columns"
    columns = [(f"{name}.{c}", column) for name, node in models.items() for c, column in node["columns"].items()]
    assert not [c for c, column in columns if not column.get("data_type")], "columns without a data_type"
    assert not [c for c, column in columns if not column["description"].strip()], "columns without a description"


def test_documented_columns_are_the_columns_the_sql_produces(
    models: dict[str, dict[str, Any]], relations: dict[tuple[str, str], Columns]
) -> None:
    mismatches = {}
    for name, node in sorted(models.items()):
        actual = relations.get((node["schema"], node["alias"]))
        assert actual is not None, f"dbt run made no relation {node['schema']}.{node['alias']}"
        docs = documented(node)
        if docs != actual:
            doc_types, actual_types = dict(docs), dict(actual)
            mismatches[name] = {
                "in the SQL, not documented": [c for c in actual_types if c not in doc_types],
                "documented, not in the SQL": [c for c in doc_types if c not in actual_types],
                "data_type, documented != actual": {
                    c: f"{t} != {actual_types[c]}" for c, t in doc_types.items() if actual_types.get(c, t) != t
                },
                "order differs": list(doc_types) != list(actual_types),
            }
    assert not mismatches, json.dumps(mismatches, indent=1)


def test_dagster_asset_pages_show_the_docs(models: dict[str, dict[str, Any]]) -> None:
    specs = {spec.key.path[-1]: spec for spec in dbt_features().specs}
    assert set(specs) == set(models)
    for name, spec in specs.items():
        assert spec.description and spec.description.startswith(models[name]["description"].strip()), name
        table = spec.metadata["dagster/column_schema"]
        assert [(c.name, c.type) for c in table.columns] == documented(models[name]), name
        assert all(c.description for c in table.columns), name
