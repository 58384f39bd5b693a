"""`@record`: an immutable value class, frozen where it is checked and cheap where it is built.

A `@dataclass(frozen=True)` assigns each field through `object.__setattr__` in its
`__init__`, several times the cost of a plain one, and a message's way through the
gateway builds about eight records (docs/performance.md, History of decisions). A record
is frozen for the type checker (mypy reports any assignment to a field, PEP 681
`frozen_default`) and at run time a plain slotted dataclass with the same `__eq__` and
field-wise `__hash__` a frozen one has; `dataclasses.replace` makes changed copies.
Nothing assigns to a record's field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar, dataclass_transform

T = TypeVar("T")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[T]) -> type[T]:
    return dataclass(slots=True, unsafe_hash=True)(cls)
