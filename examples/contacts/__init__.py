"""A two-way contact sync: persons and companies in one table, with a CRM, by rowId.

``python -m cdcsync.examples.contacts`` runs it; see README.md in this folder.
"""

from __future__ import annotations

from cdcsync.examples.contacts.run import FOLDER, Crm, Report, run

__all__ = ["FOLDER", "Crm", "Report", "run"]
