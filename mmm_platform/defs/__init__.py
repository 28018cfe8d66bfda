"""Dagster wiring only: every module here turns core functions into assets, checks, sensors and
schedules. Nothing outside this package imports it but the CLI, which executes its jobs."""

import warnings

import dagster as dg

# Single-run backfills (BackfillPolicy.single_run) are the design of every partitioned asset here
# (docs/architecture.md): the parameter's beta notice would print on every load
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
