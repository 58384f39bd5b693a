"""The type of the contract suites' `store` fixture for feature repositories (re-exported
from gateway.store.db)."""

from __future__ import annotations

from gateway.store.db import StoreDatabase

__all__ = ["StoreDatabase"]
