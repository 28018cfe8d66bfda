"""What dbt does not do well: climate clusters of geos (climate.py) and spatial smoothing weights
between geos (spatial.py). Plain functions over polars and DuckDB; the Dagster assets that run them
are in mmm_platform/defs/features/."""
