"""YouTube comments connector (Data API v3, polling). See docs/connectors.md#youtube."""

from connectors.youtube.checkpoint import Checkpoint, CheckpointRepository, MemoryCheckpointStore, SqlCheckpointStore
from connectors.youtube.config import YouTubeConfig
from connectors.youtube.connector import YouTubeConnector

__all__ = [
    "Checkpoint",
    "CheckpointRepository",
    "MemoryCheckpointStore",
    "SqlCheckpointStore",
    "YouTubeConfig",
    "YouTubeConnector",
]
