"""LRU cache of encoded prompt prefixes (a character's persona and state), capped by bytes.

Values are opaque to this class (the runner stores KV snapshots); the caller gives each value's
size. An entry larger than the whole cap is not stored. Eviction only happens when a new entry
needs room, oldest use first, and is counted in the stats.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, Hashable, TypeVar

__all__ = ["PrefixCache", "PrefixCacheStats"]

V = TypeVar("V")


@dataclass(frozen=True)
class PrefixCacheStats:
    num_entries: int
    num_bytes: int
    capacity_bytes: int
    num_hits: int
    num_misses: int
    num_evictions: int

    @property
    def hit_rate(self) -> float:
        lookups = self.num_hits + self.num_misses
        return self.num_hits / lookups if lookups else 0.0


class PrefixCache(Generic[V]):
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._num_bytes = 0
        self._num_hits = self._num_misses = self._num_evictions = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> V | None:
        """The value for `key` (marking it recently used), counting a hit or a miss."""
        entry = self._entries.get(key)
        if entry is None:
            self._num_misses += 1
            return None
        self._entries.move_to_end(key)
        self._num_hits += 1
        return entry[0]

    def put(self, key: Hashable, value: V, num_bytes: int) -> bool:
        """Store `value`; evict least recently used entries to make room. False if too large."""
        if num_bytes > self.capacity_bytes:
            return False
        if key in self._entries:
            self._num_bytes -= self._entries.pop(key)[1]
        while self._entries and self._num_bytes + num_bytes > self.capacity_bytes:
            _, (_, evicted_bytes) = self._entries.popitem(last=False)
            self._num_bytes -= evicted_bytes
            self._num_evictions += 1
        self._entries[key] = (value, num_bytes)
        self._num_bytes += num_bytes
        return True

    def clear(self) -> None:
        self._entries.clear()
        self._num_bytes = 0

    def stats(self) -> PrefixCacheStats:
        return PrefixCacheStats(len(self._entries), self._num_bytes, self.capacity_bytes,
                                self._num_hits, self._num_misses, self._num_evictions)
