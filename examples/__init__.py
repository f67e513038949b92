"""Runnable examples on the local stack, each with its own table, connector and configuration.

``contacts``: a two-way person/company sync with a CRM (``python -m cdcsync.examples.contacts``).
``jsonserver`` and ``directus``: two-way syncs with real third-party servers from npm,
configured with the ``rest`` provider's settings only, driven by random edits on both
sides (:mod:`cdcsync.examples.convergence`).
:mod:`cdcsync.examples.runner` holds what every example does to run.
"""

from __future__ import annotations

__all__: list[str] = []
