"""Operators: replay, resync, dead-letter redrive and inspection tools behind the CLI."""
