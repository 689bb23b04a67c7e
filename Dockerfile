# syntax=docker/dockerfile:1
# One image recipe for the five services; SERVICE picks which (crawler, translator, generator,
# monitor, gateway) and PORT its HTTP port (API, or health and metrics). From the repo root:
#   docker build --build-arg SERVICE=gateway --build-arg PORT=8000 -t seoblog/gateway .
# compose.yaml passes both for each service (`docker compose build`).

ARG PYTHON_IMAGE=python:3.11-slim

# Only the workspace's pyproject.toml files: the dependency layer below then changes when a
# manifest or the lock does, not when code does (COPY --from compares content).
FROM ${PYTHON_IMAGE} AS manifests
WORKDIR /src
COPY libs/ libs/
COPY services/ services/
RUN find libs services -type f ! -name pyproject.toml -delete

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<name>" >&2; exit 1; }
# Pinned to the uv that wrote uv.lock, so `--frozen` reads it as written.
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3
WORKDIR /app

# Third-party dependencies only.
COPY pyproject.toml uv.lock ./
COPY --from=manifests /src/ ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "${SERVICE}" --no-install-workspace

# The shared libraries and this service, installed non-editable so the runtime stage needs
# the virtualenv alone.
COPY libs/ libs/
COPY services/${SERVICE}/ services/${SERVICE}/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "${SERVICE}"


FROM ${PYTHON_IMAGE}
ARG SERVICE
ARG PORT=8000
# A fixed numeric uid so Kubernetes can verify runAsNonRoot.
RUN groupadd --system --gid 10001 seoblog \
 && useradd --system --uid 10001 --gid seoblog --no-create-home --home-dir /tmp seoblog
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    SEOBLOG_SERVICE=${SERVICE} \
    SEOBLOG_PORT=${PORT} \
    OTEL_SERVICE_NAME=${SERVICE}
WORKDIR /app
USER 10001:10001
EXPOSE ${PORT}
# The port the service listens on: <SERVICE>_PORT when the deployment sets it, else PORT.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; s = os.environ['SEOBLOG_SERVICE']; p = os.environ.get(s.upper() + '_PORT') or os.environ['SEOBLOG_PORT']; urllib.request.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=2)"
# exec: the service is PID 1 and gets SIGTERM itself.
CMD ["sh", "-c", "exec python -m \"$SEOBLOG_SERVICE\""]
