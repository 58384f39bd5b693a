"""`python -m gateway recording …`: export, identity, shred, switch (admin; no tenant scope)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.blobs import BlobStore, check_key, delete_prefix
from gateway.config import Config
from gateway.store.db import Database
from recording.blobs import LocalBlobStore
from recording.catalogue import Catalogue
from recording.keys import KeyRing, RecordingKeys
from recording.masterkey import Sealer, load_master_key
from recording.segments import SegmentedBlobs

RecordingSwitch = Callable[[str, bool], Awaitable[None]]
"""(tenant id, on): turn call recording on or off for a tenant (the calls feature's setting)."""


def configure_recording_parser(r: argparse.ArgumentParser) -> None:
    rs = r.add_subparsers(dest="rcmd", required=True)
    ex = rs.add_parser("export", help="copy a recording's age file (decrypt with `age -d -i key.txt`)")
    ex.add_argument("--id", required=True)
    ex.add_argument("--out", required=True)
    ident = rs.add_parser("identity", help="print a tenant's age identities (AGE-SECRET-KEY-…) for `age -d -i`")
    ident.add_argument("--tenant", required=True)
    sh = rs.add_parser("shred", help="delete a tenant's recording keys: all its recordings become unrecoverable")
    sh.add_argument("--tenant", required=True)
    sh.add_argument("--yes", action="store_true", help="confirm; nothing is done without it")
    sh.add_argument("--delete-files", action="store_true",
                    help="also delete the tenant's recording files (DATA_DIR or the BLOB_URL bucket)")
    sw = rs.add_parser("switch", help="turn call recording on or off for a tenant")
    sw.add_argument("--tenant", required=True)
    sw.add_argument("state", choices=["on", "off"])


def _keyring(db: Database, config: Config, master_key: str | None) -> RecordingKeys:
    key = load_master_key(master_key, config.storage.data_dir, embedded=not config.storage.database_url)
    return KeyRing(db, Sealer(key), time.time)


async def run_recording_command(db: Database, config: Config, args: argparse.Namespace, *,
                                master_key: str | None, switch: RecordingSwitch, blobs: BlobStore) -> int:
    """`master_key`: the MASTER_KEY setting; `switch`: where a tenant's recording is turned on or off;
    `blobs`: the node's blob store (with BLOB_URL the recordings are segment objects there)."""
    if args.rcmd == "export":
        row = await Catalogue(db).get_any_tenant(args.id)
        if row is None:
            print(f"no recording {args.id!r}", file=sys.stderr)
            return 2
        if config.storage.blobs.url:
            data = await SegmentedBlobs(blobs, asyncio.get_running_loop()).read_all(row.blob_key)
        else:
            data = LocalBlobStore(Path(config.storage.data_dir) / "recordings").read(row.blob_key)
        digest = hashlib.sha256(data).hexdigest()
        if row.sha256 is not None and digest != row.sha256:
            print(f"recording {row.id}: stored file does not match its sha256", file=sys.stderr)
            return 3
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        print(json.dumps({"id": row.id, "tenant_id": row.tenant_id, "call_id": row.call_id, "key_id": row.key_id,
                          "state": row.state, "size": len(data), "sha256": digest, "out": args.out}))
        return 0
    if args.rcmd == "identity":
        ids = await _keyring(db, config, master_key).identities_text(args.tenant)
        if not ids:
            print(f"tenant {args.tenant!r} has no recording identity (none yet, or shredded)", file=sys.stderr)
            return 2
        for key_id, secret in ids:
            print(f"# izihelp recording key {key_id} of tenant {args.tenant}")
            print(secret)
        return 0
    if args.rcmd == "shred":
        if not args.yes:
            print("refusing to shred without --yes (irreversible)", file=sys.stderr)
            return 2
        n = await _keyring(db, config, master_key).shred(args.tenant)
        out: dict[str, object] = {"tenant_id": args.tenant, "keys_shredded": n}
        if args.delete_files:
            out["files_deleted"], _ = await delete_prefix(blobs, f"recordings/{check_key(args.tenant)}/")
        print(json.dumps(out))
        return 0
    if args.rcmd == "switch":
        await switch(args.tenant, args.state == "on")
        print(json.dumps({"tenant_id": args.tenant, "recording": args.state}))
        return 0
    return 2
