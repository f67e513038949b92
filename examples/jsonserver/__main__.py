"""``python -m cdcsync.examples.jsonserver [SEED ...]``: run the json-server example."""

from __future__ import annotations

from cdcsync.examples.jsonserver.run import main

main()
