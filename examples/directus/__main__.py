"""``python -m cdcsync.examples.directus [SEED ...]``: run the Directus example."""

from __future__ import annotations

from cdcsync.examples.directus.run import main

main()
