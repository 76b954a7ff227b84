"""Config stores: where Istio objects come from (a watched directory, memory, Kubernetes)."""

from weft.config.directory import DirectoryStore
from weft.config.memory import MemoryStore
from weft.config.store import ConfigStore

__all__ = ["ConfigStore", "DirectoryStore", "MemoryStore"]
