# The two commands a fresh machine needs: `make demo` and `make test`.
.PHONY: install demo test unit lint down bench bench-quick

install:
	./scripts/install-deps.sh

demo: install
	cdcsync demo

test: install
	python3 -m pytest

unit:
	python3 -m pytest tests/unit

bench: install
	python3 -m cdcsync.bench

bench-quick: install
	python3 -m cdcsync.bench --quick

lint:
	ruff check . && ruff format --check . && mypy

down:
	cdcsync local down
