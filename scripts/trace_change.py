"""Follow one change through the code and count where a reader has to go.

Runs a push (a Debezium update of an entity already synced) and a pull (a
poll record of an external edit) through the real agent step, with the
in-memory sides of ``cdcsync.testing``, and records every call into a
cdcsync function made from the agent's code (``agents/``), in call order: the
path a reader follows, entering each mapper, sink or schema function the agent
calls but not that function's own internals, nor a one-statement function
(``now_ms``, ``SyncState.seen``), which a reader takes in by its name (``--all``
counts those too). A *stop* is a call that lands in
another file than the previous stop; a *return* is a stop in a file already
visited. The path runs from the record Faust hands over to the result sent.

    python3 scripts/trace_change.py [--path]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import functools
import inspect
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from cdcsync.agents.poller import Poller
from cdcsync.agents.sync import EntitySync
from cdcsync.schemas.config import EntityConfig
from cdcsync.testing.events import Feed, Partition, Topics
from cdcsync.testing.sinks import MemorySink, MemoryWriter
from cdcsync.testing.world import entity_sync

ROOT = Path(__file__).resolve().parent.parent
SKIP = (ROOT / "testing", ROOT / "scripts")
#: Count one-statement functions too (``--all``).
ALL = False


@functools.cache
def _trivial(code: CodeType) -> bool:
    """A one-statement function (``now_ms``, ``SyncState.seen``): read by its name alone."""
    try:
        source = textwrap.dedent(inspect.getsource(code))
        func = ast.parse(source).body[0]
    except (OSError, SyntaxError, IndexError):
        return False
    if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return len(body) <= 1


def _project_file(frame: FrameType | None) -> str | None:
    if frame is None:
        return None
    path = Path(frame.f_code.co_filename)
    if not path.is_relative_to(ROOT) or any(path.is_relative_to(s) for s in SKIP):
        return None
    return str(path.relative_to(ROOT))


async def _trace(step: Callable[[], Awaitable[Any]]) -> list[tuple[str, str]]:
    """The (file, function) of every call into cdcsync code made by ``step``, in order."""
    calls: list[tuple[str, str]] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or (where := _project_file(frame)) is None:
            return
        caller = _project_file(frame.f_back)
        # The agent's path: its own calls and each call it makes out of agents/, not
        # the internals of the mapper, sink or schema it calls.
        if _trivial(frame.f_code) and not ALL:
            return
        if not calls or (caller or "").startswith("agents/"):
            calls.append((where, frame.f_code.co_name))

    sys.setprofile(profile)
    try:
        await step()
    finally:
        sys.setprofile(None)
    return calls


def _stops(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    stops: list[tuple[str, str]] = []
    for where, name in calls:
        if not stops or stops[-1][0] != where:
            stops.append((where, name))
    return stops


def _report(label: str, calls: list[tuple[str, str]], *, show: bool) -> None:
    stops = _stops(calls)
    files = {where for where, _ in stops}
    print(f"{label}: {len(stops)} stops in {len(files)} files, {len(stops) - len(files)} returns")
    if show:
        for where, name in stops:
            print(f"    {where}  {name}")


def _world() -> tuple[EntitySync, Any, MemorySink, MemoryWriter]:
    part = Partition(topic="cdcsync.contact")  # the entity topic; records what is sent
    sink = MemorySink()
    writer = MemoryWriter(lambda *change: None)
    config = EntityConfig(
        topic="cdcsync.contact",
        mapping={"firstName": "first_name", "email": "email"},
        target={"provider": "memory"},
        source={"table": "contact"},
    )
    topics = Topics(part, part, part, part, part)
    sync = entity_sync(config, sink=sink, writer=writer, topics=topics)
    return sync, part, sink, writer


async def main(show: bool) -> None:
    sync, part, sink, writer = _world()
    feed: Any = Feed()  # fake events stand in for Faust's
    row = {"id": 1, "first_name": "Ada", "email": "ada@example.org"}
    writer.rows["1"] = dict(row)
    await sync.process(feed("c", row))  # create: the entity is synced before the trace
    writer.rows["1"] = {**row, "first_name": "Ada B."}
    update = feed("u", writer.rows["1"])
    _report("push", await _trace(lambda: sync.process(update)), show=show)

    poller = Poller(sync.entity, sync.applier, part, sync.refs)
    await poller.poll_once()
    part.events.clear()
    part.offset = feed.offset  # the poll records follow the Debezium ones on the partition
    (external_id,) = sink.objects
    sink.edit(external_id, {"firstName": "Ada C."})
    await poller.poll_once()
    (record,) = part.events
    _report("pull", await _trace(lambda: sync.process(record)), show=show)
    actions = [r.get("action") for r in part.sent if "action" in r]
    assert actions == ["create", "update", "pull"], actions


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", action="store_true", help="print every stop")
    parser.add_argument("--all", action="store_true", help="count one-statement functions too")
    args = parser.parse_args()
    ALL = args.all
    asyncio.run(main(args.path))
