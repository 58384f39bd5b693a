"""Chaos: 3 gateway processes, PostgreSQL, a private Redis; visitors and agents converse with
acks while a node is SIGKILLed, Redis restarts and clients are cut off and reconnect.
Afterwards every acked message is stored exactly once and every participant has the whole
stream of its conversations, in order, matching the store."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.chaos.harness import Participant, tally
from tests.chaos.support import configure, create_agents, private_redis, stored_messages
from tests.support.procs import pg_redis_cluster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

VISITORS, AGENTS, MESSAGES = 18, 6, 16


async def _talk(p: Participant, convs: list[str], n: int, rng: random.Random) -> None:
    for i in range(n):
        await p.send(convs[i % len(convs)], f"{p.name} says {i}")
        await asyncio.sleep(rng.uniform(0.1, 0.35))
        await p.heal()


async def test_chaos_no_acked_message_lost_or_duplicated(tmp_path) -> None:
    rng = random.Random(7)
    started = time.monotonic()
    async with private_redis(tmp_path) as redis, pg_redis_cluster(tmp_path) as cluster:
        configure(cluster, redis.url, PRESENCE_INTERVAL="1")
        await cluster.cli("migrate")
        t = await cluster.cli("tenant", "create", "--name", "Chaos")
        nodes = [cluster.start(f"node-{i}") for i in range(3)]
        for n in nodes:
            await cluster.wait_ready(n)

        def live() -> list[str]:
            return [n.url for n in nodes if n.proc.poll() is None]

        tokens = await create_agents(nodes[0].url, t["admin_token"], AGENTS)
        visitors = [Participant(f"v{i}", "/visitor", {"widget_key": t["widget_key"]}, live) for i in range(VISITORS)]
        agents = [Participant(f"a{i}", "/agent", {"token": tok}, live) for i, tok in enumerate(tokens)]
        everyone = visitors + agents
        try:
            await asyncio.gather(*(p.connect(nodes[i % 3].url) for i, p in enumerate(everyone)))
            convs: list[str] = []
            agent_convs: dict[str, list[str]] = {a.name: [] for a in agents}
            for i, v in enumerate(visitors):
                assert v.sio is not None
                res = await v.sio.call("conversation:start", namespace="/visitor", timeout=10)
                assert res["ok"], res
                conv, epoch = res["conversation"]["id"], res["conversation"]["epoch"]
                convs.append(conv)
                v.add_conversation(conv, epoch)
                v._conn_last[conv] = 0
                a = agents[i % AGENTS]
                a.add_conversation(conv, epoch)
                agent_convs[a.name].append(conv)
            for a in agents:
                await a.reconnect()  # watch its conversations via resume (seq 0)

            async def chaos() -> None:
                await asyncio.sleep(1.5)
                nodes[2].kill()                       # SIGKILL a node under its clients
                await asyncio.sleep(1.5)
                await redis.restart(down_for=0.7)     # Redis goes away and comes back empty
                await asyncio.sleep(1.5)
                for p in rng.sample(everyone, len(everyone) // 3):
                    await p.cut()                     # network cuts: transports drop
                await asyncio.sleep(1.5)
                for p in rng.sample(everyone, len(everyone) // 4):
                    await p.cut()

            work = [_talk(v, [v_conv], MESSAGES, rng) for v, v_conv in zip(visitors, convs, strict=True)]
            work += [_talk(a, agent_convs[a.name], MESSAGES // 2, rng) for a in agents]
            await asyncio.wait_for(asyncio.gather(chaos(), *work), 60)

            for p in everyone:
                await p.heal()
            url = live()[0]
            deadline = time.monotonic() + 30  # generous: the store catches up in well under a second
            while True:
                store = await stored_messages(url, t["admin_token"], convs)
                result = tally(everyone, store)
                if (result.lost == 0 and result.duplicated == 0) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            print(f"\nCHAOS {result.line()} elapsed={time.monotonic() - started:.1f}s")
            assert result.sent == result.acked == VISITORS * MESSAGES + AGENTS * (MESSAGES // 2)
            assert sum(len(m) for m in store.values()) == result.sent
            assert result.lost == 0 and result.duplicated == 0, result.details[:20]
            assert result.out_of_order == 0, result.line()
            assert result.reconnects > 0
        finally:
            await asyncio.gather(*(p.close() for p in everyone))
