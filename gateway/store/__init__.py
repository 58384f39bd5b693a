"""Persistent store: the `Store` protocol and its factory."""

from gateway.store.base import (
    AppendResult,
    NotFound,
    Store,
    StoreError,
)

__all__ = ["AppendResult", "NotFound", "Store", "StoreError"]
