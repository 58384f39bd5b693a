"""The desk feature: what the agent console needs beyond plain chat — canned responses
(REST), conversation labels, read positions and contact profiles (agent events). Its tables: migration
0016_desk.sql, behind `gateway.desk.store`'s protocols."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.desk.canned import CannedApi
from gateway.desk.contacts import Contacts
from gateway.desk.labels import Labels
from gateway.desk.reads import Reads
from gateway.desk.store import DeskStore
from gateway.extension import Command, Extension, Host, SealedColumn
from gateway.http.api import Api


class DeskFeature:
    name = "desk"
    commands: Sequence[Command] = ()
    sealed: Sequence[SealedColumn] = ()

    async def build(self, host: Host) -> Extension:
        cfg = host.config
        store = DeskStore(host.db)
        core = Api(host.chat, host.store, cfg)
        canned = CannedApi(store, core.principal, core.body, clock=host.clock,
                           max_text_chars=cfg.limits.max_text_chars)
        labels = Labels(host.chat, store, host.broker, node_id=host.node_id, clock=host.clock)
        return Extension(
            routes=canned.routes(),
            agent_events={**labels.events(), "conversation:reads": Reads(host.chat).reads,
                          "contact:profile": Contacts(host.chat, store).profile},
        )
