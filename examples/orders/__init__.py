"""The orders example: an order and its tickets pushed to a ticket shop, with finalize."""
