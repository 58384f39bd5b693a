"""Session fixtures shared by every test folder: `seaweed`, a real S3 server (tests/support/seaweed.py)."""

from tests.support.seaweed import seaweed

__all__ = ["seaweed"]
