# One image for the webserver, the daemon and run workers (DuckDB is a single file on a shared volume).
FROM python:3.12-slim
WORKDIR /app
ENV GX_ANALYTICS_ENABLED=false DAGSTER_HOME=/data/dagster_home \
    MMM_LANDING_DIR=/data/landing MMM_WAREHOUSE=/data/warehouse.duckdb PATH=/app/.venv/bin:$PATH
COPY pyproject.toml constraints.txt README.md ./
COPY mmm_platform ./mmm_platform
COPY assets ./assets
COPY dbt_project ./dbt_project
RUN python -m venv .venv && .venv/bin/pip install --no-cache-dir -c constraints.txt . \
    && .venv/bin/python -m mmm_platform.defs.features.project
COPY deploy/local/dagster.yaml workspace.yaml ./
EXPOSE 3000
