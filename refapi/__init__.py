"""A reference external API, the far end of the sync for the demo, tests and benchmarks.

It stands in for a CRM or case-management system: records with server ids
and an opaque ``rowId`` version token (no timestamps), bearer auth,
``If-Match``, cursor paging with equality filters, and on demand the 429s,
5xx and latency real APIs produce. ``python -m cdcsync.refapi`` runs it;
:func:`serve` and :func:`run_in_thread` embed it.
"""

from __future__ import annotations

from .faults import FaultSpec
from .server import API_PREFIX, RefApi, RefApiThread, run_in_thread, serve
from .store import Store

__all__ = ["API_PREFIX", "FaultSpec", "RefApi", "RefApiThread", "Store", "run_in_thread", "serve"]
