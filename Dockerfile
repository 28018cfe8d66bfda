# One image for every service of docker-compose.yml: the code server (which runs the runs, next to
# the warehouse volume), the webserver and the daemon (which load the code only through it).
FROM python:3.12-slim
WORKDIR /app
ENV GX_ANALYTICS_ENABLED=false DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true PATH=/app/.venv/bin:$PATH
COPY pyproject.toml constraints.txt README.md ./
COPY mmm_platform ./mmm_platform
COPY assets ./assets
COPY dbt_project ./dbt_project
# editable: the code reads assets/ and dbt_project/ beside the package, which a wheel would leave out
RUN python -m venv .venv && .venv/bin/pip install --no-cache-dir -c constraints.txt -e . \
    && .venv/bin/python -m mmm_platform.defs.features.project
COPY deploy ./deploy
EXPOSE 3000 4000
