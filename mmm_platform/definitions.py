"""Entry point for the webserver, the daemon, the CLI and tests: every module under mmm_platform/defs/."""

import warnings
from pathlib import Path

import dagster as dg

# Single-run backfills (BackfillPolicy.single_run) are the design of every partitioned asset here
# (docs/architecture.md): the parameter's beta notice would print on every load
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
