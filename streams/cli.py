"""cdcsync's face on Faust's command line: its help text and version, Faust's extras hidden.

``app.main()`` runs Faust's click group (``faust.cli.faust.cli``), which carries
Faust's welcome text, ``--version`` and commands that mean nothing here
(LiveCheck, Faust models, sending to an agent, deleting local table state).
:func:`present` turns that group into cdcsync's: it still runs them if named,
but ``--help`` lists only what cdcsync users need.
"""

from __future__ import annotations

from collections.abc import Sequence

import click
from faust.cli.faust import cli as faust_cli

from cdcsync import __version__

__all__ = ["HELP", "HIDDEN_COMMANDS", "HIDDEN_OPTIONS", "asks_only_for_help", "present"]

HELP = """cdcsync keeps PostgreSQL and external APIs in sync, both ways: Debezium streams
row changes through Kafka to Faust agents, which map them and call each API;
pollers and webhooks bring external changes back.

`cdcsync worker` syncs; the other commands run the local stack and operate the
sync. The configuration is $CDCSYNC_CONFIG, else ./cdcsync.yaml.
"""

#: Faust's commands without a use in cdcsync (``completion`` needs a package not installed).
HIDDEN_COMMANDS = ("clean-versions", "completion", "livecheck", "model", "models", "reset", "send")
#: Root options with no effect on an app built from the configuration file.
HIDDEN_OPTIONS = ("app", "datadir")


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo(f"cdcsync {__version__}")
    ctx.exit()


def _version_option() -> click.Option:
    return click.Option(
        ["--version"],
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=_print_version,
        help="Show cdcsync's version and exit.",
    )


def present(group: click.Group = faust_cli) -> None:
    """Give Faust's root command cdcsync's help and version and hide what does not apply."""
    group.help = HELP
    for name in HIDDEN_COMMANDS:
        if name in group.commands:
            group.commands[name].hidden = True
    params: list[click.Parameter] = []
    for param in group.params:
        if param.name == "version":
            param = _version_option()
        elif param.name in HIDDEN_OPTIONS and isinstance(param, click.Option):
            param.hidden = True
        params.append(param)
    group.params = params


def asks_only_for_help(args: Sequence[str]) -> bool:
    """Whether the command line only asks for help or the version (no configuration needed)."""
    return not args or "--help" in args or "--version" in args
