"""Two-way sync with Directus 12.4.0 (npm): data envelopes, offset paging, date_updated versions.

``python -m cdcsync.examples.directus`` runs it; see README.md in this folder.
"""

from __future__ import annotations

from cdcsync.examples.directus.run import FOLDER, MAPPING, Directus, run

__all__ = ["FOLDER", "MAPPING", "Directus", "run"]
