"""In-memory stand-ins for tests: a sink, a source writer, fake events and sample events.

For unit tests of mappers, decisions and agents, here and in users' projects;
integration tests use the real stack instead.
"""

from cdcsync.testing.sinks import MemorySink, MemoryWriter

__all__ = ["MemorySink", "MemoryWriter"]
