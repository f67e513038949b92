"""What the operator commands share: declaring them, error reporting, progress bars, output."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import click
from faust.cli import AppCommand

from cdcsync.errors import CdcsyncError
from cdcsync.operators.timeparse import parse_time

__all__ = ["command", "emit_json", "failing_cleanly", "parse_opt_time", "progress"]


def command(*options: Any) -> Callable[[Callable[..., Awaitable[None]]], type[AppCommand]]:
    """``@command(argument(...), option(...))``: what ``@app.command(...)`` does, app-free.

    Faust adds a command to its CLI when the command's class is created and
    runs it with the app the CLI started (``self.app``), so a package that
    cannot reach the app (``demo``, above streams) declares its command at
    module level with this, and the app's ``autodiscover`` list imports it.
    The docstring is the command's ``--help``.
    """
    decorate: Callable[[Callable[..., Awaitable[None]]], type[AppCommand]]
    decorate = AppCommand.from_handler(*options)
    return decorate


@contextlib.contextmanager
def failing_cleanly(command: str) -> Iterator[None]:
    """Turn a cdcsync error into one line on stderr and exit status 1 (no traceback)."""
    try:
        yield
    except CdcsyncError as exc:
        click.echo(f"cdcsync {command}: {exc}", err=True)
        raise SystemExit(1) from None


def parse_opt_time(value: str | None) -> int | None:
    """``--since``/``--until`` to epoch ms, ``None`` when not given."""
    return parse_time(value) if value else None


@contextlib.contextmanager
def progress(label: str, length: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (stdout stays clean for ``--json``); yields ``advance(n)``."""
    with click.progressbar(
        length=max(length, 1), label=label, file=sys.stderr, show_pos=True, show_eta=True
    ) as bar:
        yield bar.update


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=str))
