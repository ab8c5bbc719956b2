# Docstore API image: slim, non-root, pinned dependencies, several uvicorn workers.
# Runs with ENV=prod, so it needs MONGODB_URL and a real JWT_SECRET (see compose.yaml).

FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /venv
COPY requirements.lock pyproject.toml ./
COPY app ./app
# Runtime dependencies only (no dev tools, no embedded database), at the locked versions.
RUN /venv/bin/pip install --no-cache-dir --constraint requirements.lock . \
    && find /venv -name '__pycache__' -prune -exec rm -rf {} +

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 docstore \
    && install -d -o docstore /var/run/docstore-metrics
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ENV=prod \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=2 \
    PROMETHEUS_MULTIPROC_DIR=/var/run/docstore-metrics
USER docstore
WORKDIR /home/docstore
# Operator scripts: docker compose exec api python -m scripts.create_admin --email ...
COPY --chown=docstore scripts ./scripts
COPY --chown=docstore fixtures ./fixtures
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# SIGTERM lets in-flight requests finish (30 s) before the workers exit.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "app"]
