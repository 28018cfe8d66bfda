"""The dbt project of the feature marts, and how its manifest gets prepared.

dagster-dbt builds the dbt assets from dbt_project/target/manifest.json (git-ignored). It is made:
- at setup and in CI, once: `python -m mmm_platform.defs.features.project` (or
  `dagster-dbt project prepare-and-package --file mmm_platform/defs/features/project.py`);
- under `dagster dev` / `dg dev`: by prepare_if_dev() on every code load, so model edits show at once;
- anywhere else (tests, the CLI in a fresh checkout): by ensure_manifest() when the definitions are
  loaded and the manifest is missing or older than a file of the dbt project, so loading the
  definitions never fails for want of a manifest and never runs on a stale one.
"""

import os
import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from mmm_platform.config import DBT_PROJECT_DIR

# dagster-dbt runs the `dbt` found on PATH; an interpreter started by its path (.venv/bin/python,
# .venv/bin/dagster) does not put its own bin folder there, so add it when dbt is installed beside it.
_interpreter_bin = Path(sys.executable).parent
if shutil.which("dbt") is None and (_interpreter_bin / "dbt").exists():
    os.environ["PATH"] = f"{_interpreter_bin}{os.pathsep}{os.environ.get('PATH', '')}"

#: dbt's own DBT_TARGET_PATH (relative to the project, or absolute) moves the manifest and every
#: run's artifacts with it; the test suite gives each of its parallel workers one (tests/conftest.py)
dbt_project = DbtProject(
    project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target_path=os.environ.get("DBT_TARGET_PATH", "target")
)
dbt_project.prepare_if_dev()

#: what the manifest is parsed from
_PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "models", "macros", "tests")


def prepare_manifest() -> Path:
    """Parse the dbt project into its manifest (dbt parse); returns the manifest's path."""
    dbt_project.preparer.prepare(dbt_project)
    return dbt_project.manifest_path


def ensure_manifest() -> Path:
    """The manifest's path, parsing the project first when the manifest is missing or stale."""
    manifest = dbt_project.manifest_path
    sources = [
        path
        for name in _PROJECT_FILES
        for path in ([DBT_PROJECT_DIR / name] if name.endswith(".yml") else (DBT_PROJECT_DIR / name).rglob("*"))
        if path.is_file()
    ]
    newest = max(path.stat().st_mtime for path in sources)
    if not manifest.exists() or manifest.stat().st_mtime < newest:
        prepare_manifest()
    return manifest


if __name__ == "__main__":
    print(prepare_manifest())
