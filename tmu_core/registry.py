"""One small registry type shared by datasets, models and methods.

Names map to factories with a one-line description; a duplicate name is a programming error and a miss
is a user error that lists the valid names (like torchvision's `register_model`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import TMUError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: T
    summary: str


class Registry(Generic[T]):
    """Name -> factory, with a summary line per entry."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, summary: str) -> Callable[[T], T]:
        def wrap(factory: T) -> T:
            if name in self._entries:
                raise RuntimeError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = Entry(name, factory, summary)
            return factory

        return wrap

    def get(self, name: str) -> T:
        return self.entry(name).factory

    def entry(self, name: str) -> Entry[T]:
        if name not in self._entries:
            raise TMUError(f"unknown {self.kind} '{name}'; valid: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        return list(self._entries)

    def describe(self) -> list[tuple[str, str]]:
        return [(e.name, e.summary) for e in self._entries.values()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries
