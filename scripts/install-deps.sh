#!/usr/bin/env bash
# Install what cdcsync needs on a fresh Debian machine; a no-op when it is all there.
# Kafka, Kafka Connect and Debezium jars are fetched later by `cdcsync local up` (Maven).
set -euo pipefail

need=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
# The operator page's browser test (tests/browser) drives Debian's chromium with Playwright
# (pip, in .[dev]) through executable_path: no `playwright install` browser download.
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
fi

# The real API servers of the integration tests (json-server, Directus) are installed by the
# tests themselves from npm (cdcsync.stack.apis); they need Node.js 20+ with npm (Debian 12's
# own nodejs is 18, so it is not installed from here).
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ] || ! command -v npm >/dev/null; then
    echo "Node.js 20 or newer with npm is needed for the real-server tests (found: ${node_major});" >&2
    echo "install it (e.g. your distribution's nodejs 20 packages) and run this again" >&2
    exit 1
fi

python3 -m pip install -q --disable-pip-version-check -e '.[dev,rocksdb]'
