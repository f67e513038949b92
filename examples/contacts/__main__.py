"""``python -m cdcsync.examples.contacts``: run the contacts example once."""

from __future__ import annotations

from cdcsync.examples.contacts.run import main

main()
