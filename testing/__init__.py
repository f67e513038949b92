"""In-memory stand-ins for tests: a sink and a source writer that keep their objects in dicts.

For unit tests of mappers, decisions and agents, here and in users' projects;
integration tests use the real stack instead.
"""

from cdcsync.testing.sinks import MemorySink, MemoryWriter

__all__ = ["MemorySink", "MemoryWriter"]
