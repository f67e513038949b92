# The two commands a fresh machine needs: `make demo` and `make test`.
.PHONY: install demo test unit lint down

install:
	./scripts/install-deps.sh

demo: install
	cdcsync demo

test: install
	python3 -m pytest

unit:
	python3 -m pytest tests/unit

lint:
	ruff check . && ruff format --check . && mypy

down:
	cdcsync local down
