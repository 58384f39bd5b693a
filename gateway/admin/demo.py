"""A demo tenant and agent for a first run (`python -m gateway serve --demo`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.admin.tenants import create_tenant
from gateway.config import Config
from gateway.store import Store

DEMO_FILE = "demo.json"


def load_demo(data_dir: str | Path) -> dict[str, Any] | None:
    """The demo tenant's credentials (widget key, agent token) if demo mode created them."""
    path = Path(data_dir) / DEMO_FILE
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    return info if isinstance(info, dict) and "widget_key" in info else None


async def ensure_demo(store: Store, config: Config, *, now: float) -> str:
    """Create the demo tenant once (its credentials are kept in DATA_DIR/demo.json)."""
    path = Path(config.storage.data_dir) / DEMO_FILE
    if path.exists():
        info = json.loads(path.read_text())
    else:
        nt = await create_tenant(store, "Demo shop", admin_name="Demo agent", now=now)
        info = {"tenant_id": nt.tenant.id, "widget_key": nt.tenant.widget_key,
                "identity_secret": nt.tenant.identity_secret, "agent_token": nt.admin_token}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(info, indent=2))
        path.chmod(0o600)
    base = f"http://{config.server.host}:{config.server.port}"
    return (
        "Demo tenant ready:\n"
        f"  widget key : {info['widget_key']}\n"
        f"  agent token: {info['agent_token']}\n"
        f"  REST       : curl -H 'Authorization: Bearer {info['agent_token']}' {base}/api/v1/conversations\n"
        f"  demo page  : {base}/demo   (agent console: {base}/console)\n"
        f"  health     : {base}/healthz\n"
        f"  credentials saved in {path}"
    )
