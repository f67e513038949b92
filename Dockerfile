# The cdcsync worker (and its operator commands): `docker build -t cdcsync .`
#
#   docker run -v ./cdcsync.yaml:/etc/cdcsync/cdcsync.yaml:ro -v cdcsync-state:/var/lib/cdcsync \
#              -p 6066:6066 cdcsync                       # worker -l info
#   docker run ... cdcsync topics                          # create every topic it needs
#
# The configuration is mounted at $CDCSYNC_CONFIG; secrets are files it names
# (`{file: /run/secrets/...}`), mounted by the orchestrator. The file must set
# `app.web.bind: 0.0.0.0` for the port and the healthcheck to reach the worker.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CDCSYNC_CONFIG=/etc/cdcsync/cdcsync.yaml \
    CDCSYNC_HEALTH_URL=http://127.0.0.1:6066/healthz

WORKDIR /src
# The repository root is the `cdcsync` package (pyproject maps it): install it with the
# RocksDB extra, the production state store; the sources are not kept. Every dependency
# is pinned in pyproject.toml, which hadolint cannot see (DL3013 asks for `pkg==version`).
COPY . .
# hadolint ignore=DL3013
RUN pip install ".[rocksdb]" \
    && rm -rf /src \
    && groupadd --system --gid 10001 cdcsync \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/cdcsync --create-home cdcsync \
    && mkdir -p /etc/cdcsync \
    && chown cdcsync:cdcsync /var/lib/cdcsync

USER 10001:10001
WORKDIR /var/lib/cdcsync
VOLUME ["/var/lib/cdcsync"]
EXPOSE 6066

# /healthz needs no token; the image has no curl, Python's urllib does the call.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['CDCSYNC_HEALTH_URL'], timeout=4)"]

ENTRYPOINT ["cdcsync"]
CMD ["worker", "-l", "info"]
