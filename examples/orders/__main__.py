"""``python -m cdcsync.examples.orders``: run the orders example once."""

from __future__ import annotations

from cdcsync.examples.orders.run import main

main()
