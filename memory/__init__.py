"""Multi-granularity conversational memory (MemGAS): turns, session summaries and keyword facts per user,
associated by Gaussian-mixture clustering and recalled through an entropy router.

Modules: `units` (making units), `records` (SQLite), `association` (clustering), `router` (entropy
routing), `filter` (the optional LLM filter), `memory` (the `Memory` that ties them together).
"""

from memory.memory import Memory, Recall
from memory.records import MemoryRecords, SessionInfo

__all__ = ["Memory", "MemoryRecords", "Recall", "SessionInfo"]
