"""Where a partition's committed offset may move: only over records that were processed.

Records of one partition end out of order (each key runs in its own lane,
``agents.pipeline``), so the offsets acknowledged are not a prefix. Faust's own
rule (``Consumer._new_offset``) commits the first run of acknowledged offsets
if it starts at most one past the committed offset, which skips exactly one
unfinished record at the head of the partition; and it counts a jump in the
offsets it fetched as a gap already done, which a seek racing the fetcher
turns into a block of records that were never processed. Either way a crash
then loses those records. :func:`commit_point` moves the offset only over
records acknowledged one after another from the committed offset itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CommitPoint", "commit_point"]


@dataclass(frozen=True, slots=True)
class CommitPoint:
    """The offset to commit (``None``: none yet) and how many acknowledged offsets, from the
    head of the sorted list, it accounts for (they can be dropped)."""

    offset: int | None
    used: int


def commit_point(committed: int | None, acked: Sequence[int]) -> CommitPoint:
    """The next commit of a partition whose committed offset (the next record to read) is
    ``committed``, given its acknowledged offsets ``acked`` in ascending order.

    Offsets below ``committed`` were committed already and are dropped. Without a
    committed offset (a group's first commit), the first run of consecutive offsets
    counts, as in Faust.
    """
    stale = 0
    if committed is not None:
        while stale < len(acked) and acked[stale] < committed:
            stale += 1
    rest = acked[stale:]
    if not rest or (committed is not None and rest[0] != committed):
        return CommitPoint(None, stale)  # the record at the head is not done yet
    run = 1
    while run < len(rest) and rest[run] <= rest[run - 1] + 1:  # a repeat is no gap
        run += 1
    return CommitPoint(rest[run - 1] + 1, stale + run)
