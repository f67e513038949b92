"""Streams: the Faust app, its topics and tables, and the operator commands.

``cdcsync.streams.config`` reads the configuration file and the environment;
the app is built from the result by ``cdcsync.streams.app.create_app``;
nothing is declared at import time.
"""

__all__: list[str] = []
