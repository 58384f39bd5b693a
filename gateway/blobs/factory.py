"""The node's blob store from its configuration: S3 when `BLOB_URL` is set, else DATA_DIR."""

from __future__ import annotations

from gateway.blobs import BlobStore
from gateway.blobs.local import LocalBlobs
from gateway.blobs.s3 import S3Blobs, S3Settings, parse_url
from gateway.config import BlobConfig


def s3_settings(cfg: BlobConfig) -> S3Settings:
    assert cfg.url is not None
    bucket, prefix = parse_url(cfg.url)
    return S3Settings(bucket=bucket, prefix=prefix, endpoint=cfg.endpoint, region=cfg.region,
                      access_key_id=cfg.access_key_id, secret_access_key=cfg.secret_access_key,
                      path_style=cfg.path_style, timeout=cfg.timeout, attempts=cfg.attempts)


def open_blobs(cfg: BlobConfig, data_dir: str) -> BlobStore:
    """Not connected yet: an S3 store connects at its first operation."""
    if cfg.url:
        return S3Blobs(s3_settings(cfg))
    return LocalBlobs(data_dir)
