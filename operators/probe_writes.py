"""What ``cdcsync probe --write`` reads from the answers to one test object's create,
update and delete: each answer's shape, and the write settings that fit them.

Pure, like :mod:`.probe_advice`: the answers come recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

import httpx

from cdcsync.operators.probe_advice import Advice, Answer
from cdcsync.sinks.providers.rest.pointer import resolve
from cdcsync.sinks.providers.rest.settings import RestSettings

__all__ = ["Shape", "WriteAnswers", "answer_shape", "write_advice"]

BodyShape = Literal["object", "id only", "empty", "not JSON", "other"]


@dataclass(frozen=True)
class Shape:
    """What one write answer held: the object, only an id, or nothing; a Location; a version."""

    status: int
    body: BodyShape
    object_id: str | None
    #: Where the answer carries the object's version (``ETag``, the version field), if it does.
    version: str | None
    location: str | None

    @property
    def complete(self) -> bool:
        """Whether the answer holds the object and its version: nothing left to read back."""
        return self.body == "object" and self.version is not None


@dataclass(frozen=True)
class WriteAnswers:
    """The answers to the test object's writes; ``None`` where the probe did not get that far."""

    create: Answer
    #: An update sent with an If-Match no version can match.
    stale: Answer | None = None
    #: The update that counts (after the stale one, if that was refused).
    update: Answer | None = None
    #: The update needed ``application/merge-patch+json`` (JSON was refused with 415).
    merge_patch: bool = False
    delete: Answer | None = None
    #: A GET of the object after its delete.
    after_delete: Answer | None = None


def answer_shape(answer: Answer, settings: RestSettings) -> Shape:
    """The shape of a create or update answer, read as the ``rest`` provider reads it."""
    s, location = settings, answer.header("Location")
    data = resolve(answer.body, s.object_path) if answer.body is not None else None
    body: BodyShape
    object_id: str | int | None = None
    if answer.empty:
        body = "empty"
    elif answer.body is None:
        body = "not JSON"
    elif isinstance(data, dict) and isinstance(data.get(s.id_field), str | int):
        object_id = data[s.id_field]
        body = "object" if set(data) - {s.id_field, s.version_field} else "id only"
    elif isinstance(data, str | int) and not isinstance(data, bool):
        body, object_id = "id only", data
    else:
        body = "other"
    if object_id is None and location:
        object_id = _location_id(location, s)
    version = None
    if answer.header("ETag"):
        version = "ETag"
    if isinstance(data, dict) and s.version_field and data.get(s.version_field) is not None:
        version = s.version_field
    shown = None if object_id is None else str(object_id)
    return Shape(answer.status, body, shown, version, location)


def _location_id(location: str, settings: RestSettings) -> str | None:
    """The id a ``Location`` names: its segment after the collection's path."""
    collection = httpx.URL(settings.base_url + settings.collection_path).path.rstrip("/") + "/"
    path = httpx.URL(location).path
    if not path.startswith(collection):
        return None
    found = unquote(path[len(collection) :])
    return found if found and "/" not in found else None


def write_advice(w: WriteAnswers, settings: RestSettings, *, versioned: bool) -> list[Advice]:
    """The settings the write answers call for; ``versioned``: objects carry a version."""
    created = answer_shape(w.create, settings)
    if not 200 <= created.status < 300:
        return [Advice(
            "writes", f"the create was refused with HTTP {created.status} "
            f"({w.create.excerpt(120)}): name a field the API accepts with --field, or give "
            "a whole valid object with --payload", "problem",
        )]  # fmt: skip
    found: list[Advice] = []
    if created.object_id is None:
        found.append(Advice(
            "writes", "the create answer names no id (not in the body, no Location): set "
            "object_path and id_field so it can be read, else every create fails; the test "
            "object was left there: remove the one holding the marker by hand", "problem",
        ))  # fmt: skip
    shapes = [created] + ([answer_shape(w.update, settings)] if w.update else [])
    found.append(_after_write(shapes, versioned=versioned))
    found += _concurrency(w.stale, versioned=versioned)
    if w.merge_patch:
        seen = "PATCH with application/json was refused (415), merge-patch was taken"
        found.append(Advice("writes", seen, settings={"patch_format": "merge-patch"}))
    found += _deleted(w)
    return found


def _after_write(shapes: list[Shape], *, versioned: bool) -> Advice:
    if all(shape.complete for shape in shapes):
        seen = "writes answer the object with its version (no read-back call)"
        return Advice("writes", seen, settings={"after_write": "read_back"})
    lacking = ", ".join(
        f"HTTP {shape.status} {shape.body}" for shape in shapes if not shape.complete
    )
    if not versioned:
        seen = f"objects keep no version ({lacking}): a read-back gains nothing"
        return Advice("writes", seen, settings={"after_write": "next_poll"})
    return Advice(
        "writes", f"write answers lack the object or its version ({lacking}): read_back "
        "costs one GET per write (next_poll saves it; the next poll settles the version)",
        settings={"after_write": "read_back"},
    )  # fmt: skip


def _concurrency(stale: Answer | None, *, versioned: bool) -> list[Advice]:
    if stale is None:
        return []
    if stale.status in (412, 428):
        seen = f"an update with a stale If-Match is refused ({stale.status}): edits never cross"
        return [Advice("concurrency", seen, settings={"concurrency": "if_match"})]
    if 200 <= stale.status < 300:
        if versioned:
            seen = "the API ignores If-Match (a stale one was taken): compare with a GET first"
            return [Advice("concurrency", seen, settings={"concurrency": "read_before_write"})]
        seen = "the API ignores If-Match and objects keep no version: the last writer wins"
        return [Advice("concurrency", seen, settings={"concurrency": "none"})]
    return [Advice("concurrency", f"an update with a stale If-Match answered HTTP "
                   f"{stale.status}: {stale.excerpt(80)}", "note")]  # fmt: skip


def _deleted(w: WriteAnswers) -> list[Advice]:
    if w.delete is None:
        return []
    if not 200 <= w.delete.status < 300:
        return [
            Advice(
                "deletes",
                f"the delete was refused with HTTP {w.delete.status}: "
                f"{w.delete.excerpt(80)}; remove the test object by hand",
                "problem",
            )
        ]
    gone = w.after_delete
    if gone is not None and gone.status == 404:
        seen = "a deleted object reads 404: a missing object is confirmed before it is deleted"
        return [Advice("deletes", seen, "note")]
    status = "nothing" if gone is None else f"HTTP {gone.status}"
    return [Advice(
        "deletes", f"a GET after the delete answered {status}, not 404 (a soft delete?): "
        "objects missing from a listing are never confirmed gone, so no delete comes back; "
        "consider policies.target_delete: ignore", "problem",
    )]  # fmt: skip
