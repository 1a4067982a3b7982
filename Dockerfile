# syntax=docker/dockerfile:1
# Tocsin container image.
#
#   docker build -t tocsin:0.1.0 .
#   docker run --rm -p 127.0.0.1:4318:4318 -p 127.0.0.1:9099:9099 -v tocsin-data:/data \
#     -e TOCSIN_AUTH__ALLOW_UNAUTHENTICATED=true tocsin:0.1.0        # local trial only
#
# In the container Tocsin listens on 0.0.0.0, so it refuses to start until you either give it
# tokens (auth.ingest_tokens / auth.read_tokens, see deploy/kubernetes) or explicitly allow
# unauthenticated access (a local demo: deploy/compose.yaml). The DuckDB file and its WAL live
# in the /data volume. Nothing is fetched at run time.

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: compile what has no wheel, build tocsin's wheel, install both into a venv ---------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY collector ./collector
COPY alerting ./alerting
RUN python -m venv /opt/tocsin \
 && /opt/tocsin/bin/pip install --upgrade pip wheel \
 && /opt/tocsin/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/tocsin/bin/pip install /wheels/tocsin-*.whl \
 && /opt/tocsin/bin/tocsin version

# --- runtime: the venv, the example config and rules, a non-root user ----------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="tocsin" \
      org.opencontainers.image.description="OTLP in, HDR latency histograms in DuckDB, PromQL out, Slack and PagerDuty pages." \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 tocsin \
 && useradd --system --uid 10001 --gid tocsin --home-dir /data --no-create-home --shell /usr/sbin/nologin tocsin \
 && mkdir -p /data /etc/tocsin/rules \
 && chown tocsin:tocsin /data
COPY --from=builder /opt/tocsin /opt/tocsin
COPY tocsin.yaml /etc/tocsin/tocsin.yaml
COPY rules/ /etc/tocsin/rules/

# Every config key can be overridden as TOCSIN_<PATH> (docs/configuration.md).
# glibc: keep freed decode buffers instead of returning them per request (2-3x on ingest, see Makefile).
ENV PATH=/opt/tocsin/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TOCSIN_CONFIG=/etc/tocsin/tocsin.yaml \
    TOCSIN_STORAGE__PATH=/data/tocsin.duckdb \
    TOCSIN_RECEIVERS__OTLP__GRPC__LISTEN=0.0.0.0:4317 \
    TOCSIN_RECEIVERS__OTLP__HTTP__LISTEN=0.0.0.0:4318 \
    TOCSIN_API__LISTEN=0.0.0.0:9099 \
    MALLOC_MMAP_THRESHOLD_=1073741824 \
    MALLOC_TRIM_THRESHOLD_=1073741824

# Relative paths in tocsin.yaml (rules/*.yaml) resolve from here.
WORKDIR /etc/tocsin
VOLUME ["/data"]
EXPOSE 4317 4318 9099
USER 10001:10001

# /-/ready needs no token. No curl in the image: Python's urllib does it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('TOCSIN_API__LISTEN', '0.0.0.0:9099').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/-/ready', timeout=2)"]

# SIGTERM stops intake, flushes open slots to DuckDB and exits (give it a few seconds).
STOPSIGNAL SIGTERM
ENTRYPOINT ["tocsin"]
CMD ["serve"]
