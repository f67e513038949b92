"""Two-way sync with json-server 0.17.4 (npm): bare arrays, page paging, no versions, no auth.

``python -m cdcsync.examples.jsonserver`` runs it; see README.md in this folder.
"""

from __future__ import annotations

from cdcsync.examples.jsonserver.run import FOLDER, MAPPING, JsonServer, run

__all__ = ["FOLDER", "MAPPING", "JsonServer", "run"]
