"""cdcsync."""
