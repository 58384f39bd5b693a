"""Collections the gateway's assembly fills, then freezes (like aiohttp's frozen signals).

A core component that calls out to features at run time (chat's message listeners, the
edge's admission checks, node RPC methods) is given such a collection at construction.
`gateway.app.build_gateway` adds what the features declared and freezes it before the
gateway starts: from then on it is a tuple (or a read-only mapping) and adding raises
`RuntimeError`. Nothing else adds to it: features declare, the assembly composes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


class Hooks(Generic[T]):
    """An ordered collection: appendable until frozen, then a tuple."""

    __slots__ = ("_frozen", "_items")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._frozen: tuple[T, ...] | None = None

    def add(self, item: T) -> None:
        if self._frozen is not None:
            raise RuntimeError("hooks are frozen once the gateway is built")
        self._items.append(item)

    def freeze(self) -> tuple[T, ...]:
        if self._frozen is None:
            self._frozen = tuple(self._items)
        return self._frozen

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    @property
    def items(self) -> tuple[T, ...]:
        return self._frozen if self._frozen is not None else tuple(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)


class Table(Mapping[K, V]):
    """Named entries: each name added once (a second one raises `ValueError`), read-only
    once frozen."""

    __slots__ = ("_entries", "_view")

    def __init__(self) -> None:
        self._entries: dict[K, V] = {}
        self._view: Mapping[K, V] | None = None

    def add(self, key: K, value: V) -> None:
        if self._view is not None:
            raise RuntimeError("tables are frozen once the gateway is built")
        if key in self._entries:
            raise ValueError(f"{key!r} declared twice")
        self._entries[key] = value

    def freeze(self) -> Mapping[K, V]:
        if self._view is None:
            self._view = MappingProxyType(self._entries)
        return self._view

    def __getitem__(self, key: K) -> V:
        return self._entries[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
