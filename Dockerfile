# Docstore API image: slim, non-root, hash-locked dependencies, several uvicorn workers.
# Runs with ENV=prod, so it needs MONGODB_URL and a real JWT_SECRET (see compose.yaml).

# Pinned by tag and by the digest of its multi-platform index (linux/amd64 and arm64), so
# every build starts from the same bytes. Bump the tag and the digest together.
ARG PYTHON_IMAGE=python:3.11.17-slim-bookworm@sha256:2333bd330d12de02514770b3585cad313644316047cdee24a7acfdece6de6efb

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
WORKDIR /src
# Dependencies first, from the lock alone, so this layer is rebuilt only when the lock
# changes. Runtime only (no dev tools, no embedded database), every file checked against
# its sha256 in requirements.lock (which also pins setuptools, to install the project).
# Bytecode is compiled once here, hash-checked rather than timestamped, so it stays valid
# whatever the image's file times are and the non-root user never has to write any.
COPY requirements.lock ./
RUN /venv/bin/pip install --no-compile --require-hashes --requirement requirements.lock \
    && /venv/bin/python -m compileall -q -j 0 --invalidation-mode checked-hash /venv/lib
# Then the project itself: no dependencies (all installed above) and no build sandbox
# (which would fetch an unpinned setuptools), so nothing unhashed enters the image.
COPY pyproject.toml ./
COPY app ./app
RUN /venv/bin/pip install --no-compile --no-deps --no-build-isolation . \
    && /venv/bin/python -m compileall -q --invalidation-mode checked-hash \
        /venv/lib/python3.*/site-packages/app

FROM ${PYTHON_IMAGE}
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
