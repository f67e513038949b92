"""``providers`` and ``check``: what can be configured, and whether the configuration is right."""

from __future__ import annotations

from typing import Any

import click
from faust.cli import argument, option

from cdcsync.operators.providers import describe_providers
from cdcsync.schemas.config import Config, target_where
from cdcsync.sinks.targets import build_target
from cdcsync.streams.commands.support import emit_json, failing_cleanly
from cdcsync.streams.preflight import preflight
from cdcsync.streams.sync_app import SyncApp

__all__ = ["register"]


def _provider_lines(info: Any) -> list[str]:
    if info.error:
        return [f"{info.identifier}  (cannot be loaded)", f"    {info.error}"]
    used = ", ".join(info.integrations) or "-"
    lines = [f"{info.identifier}  {info.display_name}", f"    {info.description}"]
    lines.append(f"    used by integrations: {used}")
    lines.append("    settings:")
    for s in info.settings:
        default = "(required)" if s.required else f"= {s.default!r}"
        secret = "  [secret: give it under `secrets:`]" if s.secret else ""
        lines.append(f"      {s.name}: {s.type} {default}{secret}")
    return lines


def register(app: SyncApp, config: Config) -> None:
    """Attach ``providers`` and ``check`` to ``app``."""

    @app.command(
        argument("action", type=click.Choice(["list"]), default="list", required=False),
        option("--as-json", "as_json", is_flag=True, default=False, help="print JSON"),
    )
    async def providers(self: Any, action: str, as_json: bool) -> None:
        """Installed sink providers: description, settings with defaults, integrations using each.

        Providers come from the `cdcsync.providers` entry-point group: a package
        adds one by declaring an entry point, nothing else.
        """
        infos = describe_providers(config)
        if as_json or self.json:
            emit_json([i.to_json() for i in infos])
            return
        self.say("\n\n".join("\n".join(_provider_lines(i)) for i in infos))

    @app.command()
    async def check(self: Any) -> None:
        """Check the configuration as the worker does at start-up: providers and settings,
        secrets, and mapped columns against the source tables. Exit status 1 on problems.
        """
        with failing_cleanly("check"):
            preflight(config, app.config_path, {n: s.mapper for n, s in app.syncs.items()})
            for name in config.enabled_entities():
                sink = build_target(config.target(name), where=target_where(config, name))
                await sink.aclose()
        enabled = config.enabled_entities()
        disabled = sorted(set(config.entities) - set(enabled))
        self.say(
            f"configuration ok: {len(enabled)} entities enabled"
            + (f", disabled: {', '.join(disabled)}" if disabled else "")
        )
