"""Persistent store: the `Store` protocol and its factory."""

from gateway.store.base import (
    AppendRequest,
    AppendResult,
    NotFound,
    Store,
    StoreError,
)

__all__ = ["AppendRequest", "AppendResult", "NotFound", "Store", "StoreError"]
