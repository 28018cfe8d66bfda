"""Dagster wiring only: every module here turns core functions into assets, checks, sensors and
schedules. Nothing outside this package imports it."""
