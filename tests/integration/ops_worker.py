"""A ``cdcsync worker`` whose app also serves ``streams.web``'s endpoints.

Used by test_operators.py until ``create_app`` calls ``register_pages`` itself;
once it does, this adds nothing (the pages are already registered).
Run as ``python tests/integration/ops_worker.py worker -l info``.
"""

from __future__ import annotations

import sys

from cdcsync.errors import ConfigurationError
from cdcsync.streams.app import create_app
from cdcsync.streams.config import load_config
from cdcsync.streams.topics import declare_topics
from cdcsync.streams.web import register_pages


def main() -> None:
    try:
        config = load_config()
        app = create_app(config)
    except ConfigurationError as exc:
        sys.exit(f"cdcsync: configuration error: {exc}")
    if "/healthz" not in app.web.views:
        tables = {name: app.tables[config.state_table(name)] for name in config.entities}
        register_pages(app, config, topics=declare_topics(app, config), tables=tables)
    app.main()


if __name__ == "__main__":
    main()
