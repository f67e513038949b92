"""Streams: the Faust app, its topics and tables, and the operator commands.

The app is built from the configuration by ``cdcsync.streams.app.create_app``;
nothing is declared at import time.
"""

__all__: list[str] = []
