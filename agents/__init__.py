"""Agents: the Faust agents that decide and apply each change.

The decision is a pure function (``decide``); applying it talks to a sink.
"""

from cdcsync.agents.change import Decision
from cdcsync.agents.decide import decide

__all__ = ["Decision", "decide"]
