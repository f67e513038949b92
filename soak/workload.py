"""The soak's seeded workload: row changes, external edits and malformed records, in order.

Ids run from 1 to ``ids``. The first ``two_way`` ids are the two-way entity's: inserted
in the seed, then only edited on the API side (their ``notes``), so what the poller
brings back is never raced by a database change and the check knows the last value. The
other ids get updates, deletes and inserts (of an id not live: never inserted or
deleted before, so an id comes back after its delete). A malformed record goes straight
into the entity topic under a real id's key. Pure: the same seed makes the same steps.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Literal

__all__ = ["MALFORMED_VALUES", "Step", "StepOp", "build_workload", "counts", "email_of"]

#: ``c`` insert, ``u`` update, ``d`` delete (PostgreSQL); ``x`` an external edit (API);
#: ``m`` a malformed record (produced into the entity topic).
StepOp = Literal["c", "u", "d", "x", "m"]

_FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Ken", "Frances", "Niklaus"]

#: What a malformed record holds, in turn: not JSON, not UTF-8, an unknown op, an
#: envelope without a row, a JSON array.
MALFORMED_VALUES = [
    b"this is not json {",
    b"\xff\xfe\x00garbage",
    b'{"before": null, "after": {"id": 1}, "op": "z", "source": {}}',
    b'{"before": null, "after": null, "op": "c", "source": {}}',
    b"[1, 2, 3]",
]


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the load does; the fields a step does not use stay empty."""

    op: StepOp
    id: int
    first_name: str = ""
    phone: str = ""
    notes: str = ""


def email_of(entity_id: int) -> str:
    """The row's email (its natural key in the API); fixed per id, so a re-insert matches."""
    return f"soak{entity_id}@example.org"


def build_workload(
    *,
    changes: int,
    ids: int,
    two_way: int,
    seed: int = 14,
    seed_share: float = 0.8,
    insert_share: float = 0.06,
    delete_share: float = 0.05,
    edit_share: float = 0.02,
    malformed_share: float = 0.01,
) -> list[Step]:
    """``changes`` steps that change something (c, u, d, x), with ``m`` steps among them.

    The seed inserts ``seed_share`` of the ids (the two-way ids first); then each step is
    an external edit, a delete, an insert or an update by the given shares (an insert
    when nothing is live, an update when no id is free); a malformed record follows a
    change with ``malformed_share``.
    """
    if not 0 < two_way < ids * seed_share:
        raise ValueError("two_way must be positive and smaller than the seeded ids")
    rng = random.Random(seed)
    steps: list[Step] = []
    seeded = min(int(ids * seed_share), changes)
    live = list(range(two_way + 1, seeded + 1))
    free = list(range(seeded + 1, ids + 1))
    done = 0

    def add(step: Step) -> None:
        nonlocal done
        steps.append(step)
        done += 1
        if rng.random() < malformed_share:
            steps.append(Step("m", rng.randint(1, ids)))

    for i in range(1, seeded + 1):
        add(_row("c", i, rng))
    while done < changes:
        draw = rng.random()
        if draw < edit_share:
            add(Step("x", rng.randint(1, two_way), notes=f"edit{done}"))
        elif draw < edit_share + delete_share and live:
            victim = live.pop(rng.randrange(len(live)))
            free.append(victim)
            add(Step("d", victim))
        elif (draw < edit_share + delete_share + insert_share and free) or not live:
            new = free.pop(rng.randrange(len(free)))
            live.append(new)
            add(_row("c", new, rng))
        else:
            add(_row("u", live[rng.randrange(len(live))], rng))
    return steps


def _row(op: StepOp, entity_id: int, rng: random.Random) -> Step:
    first = f"{rng.choice(_FIRST)}{rng.randrange(10**6)}"
    return Step(op, entity_id, first, f"+41 {rng.randrange(10**9)}")


def counts(steps: list[Step]) -> dict[str, int]:
    """Steps by kind, with the total of changes (everything but malformed records)."""
    by: Counter[str] = Counter(s.op for s in steps)
    names = {"c": "inserts", "u": "updates", "d": "deletes", "x": "external_edits",
             "m": "malformed"}  # fmt: skip
    out = {names[k]: by.get(k, 0) for k in names}
    out["changes"] = len(steps) - by.get("m", 0)
    return out
