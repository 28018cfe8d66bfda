"""Dagster wiring of the feature marts: the dbt project (project.py) and its assets, checks and
resources, plus the Python feature assets (assets.py)."""
