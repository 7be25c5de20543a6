# User-code image for mta_assets: serves the code location over gRPC, and is the image
# the DockerRunLauncher starts for every run (deploy/dagster.yaml).
#
#   docker build -t mta-assets:latest .
#   docker run -p 4000:4000 -e MTA_LAKE_URL=gs://BUCKET/PREFIX mta-assets:latest
#
# No credentials are baked in: GCS access comes at run time from Application Default
# Credentials (the metadata server, or GOOGLE_APPLICATION_CREDENTIALS naming a mounted
# key file) or from MTA_GCP_CREDENTIALS. See deploy/README.md.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    MTA_STAGING_DIR=/tmp/mta-staging

# Memory by design, set where the process starts (docs/benchmark.md): two malloc arenas
# for the weeks' threads, large blocks mapped apart so a parse's arrays go back to the
# system, and Arrow on the system allocator. Every run container and pod inherits them.
ENV MALLOC_ARENA_MAX=2 \
    MALLOC_MMAP_THRESHOLD_=1048576 \
    ARROW_DEFAULT_MEMORY_POOL=system

WORKDIR /opt/dagster/app

# The package's own metadata is the single list of dependencies: installing the project
# installs exactly what pyproject.toml declares (dagster-postgres and dagster-docker
# included, which the run workers need to reach the instance).
COPY pyproject.toml README.md ./
COPY mta_assets ./mta_assets
COPY dashboard ./dashboard
RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info

# dbt in an environment of its own (dbt/requirements.txt says why), run by Dagster as a
# command; then the warehouse's dbt project, its manifest parsed now (offline: no packages,
# no network), so a code server never parses at start.
# The parse's vars are the default warehouse's, as a run's are (defs/warehouse/project.py),
# so that a run parses only what changed.
ENV MTA_DBT_PROJECT_DIR=/opt/dagster/app/dbt \
    MTA_DBT_EXECUTABLE=/opt/dbt/bin/dbt-for-dagster
COPY dbt ./dbt
RUN python -m venv /opt/dbt \
    && /opt/dbt/bin/pip install --no-cache-dir -r dbt/requirements.txt \
    && install -m 0755 dbt/dbt-for-dagster /opt/dbt/bin/ \
    && /opt/dbt/bin/dbt parse --quiet --project-dir dbt --profiles-dir dbt \
        --vars '{"warehouse": "/opt/dagster/app/data/warehouse.duckdb"}'

# A fixed, unprivileged uid, so mounted key files and lake folders can be granted to it.
RUN groupadd --system --gid 10001 mta \
    && useradd --system --uid 10001 --gid mta --home-dir /home/mta --create-home mta \
    && mkdir -p "$DAGSTER_HOME" "$MTA_STAGING_DIR" \
    && chown -R mta:mta "$DAGSTER_HOME" "$MTA_STAGING_DIR" dbt/target
USER 10001:10001

EXPOSE 4000

# Loading the definitions imports dagster and the GCS client: give it time before the
# first probe counts.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["dagster", "api", "grpc-health-check", "-p", "4000"]

# The module [tool.dg] in pyproject.toml names (dg dev and dg launch read it locally); dg is a
# dev tool and not installed here, so the image serves that module with dagster's code server,
# as the Helm chart does with the same arguments (deploy/k8s/values.yaml codeServerArgs).
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "mta_assets.definitions"]
