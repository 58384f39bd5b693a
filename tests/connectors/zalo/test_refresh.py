from __future__ import annotations

from connectors.zalo import ZaloAccount, ZaloConnector, ZaloSettings, ZaloTokens
from tests.connectors.zalo import fake_zalo as fz
from tests.connectors.zalo.conftest import ManualClock, Saved, Sink, make_account


async def _run(clock: ManualClock, fake: fz.FakeZalo, saved: Saved, **account_kw) -> tuple[ZaloConnector, ZaloAccount]:
    at, rt, exp = fake.issue(lifetime=90000)
    account = make_account(fake, ZaloTokens(at, rt, exp), **account_kw)
    settings = ZaloSettings(refresh_margin=600, refresh_retry=60)
    c = ZaloConnector([account], saved, settings=settings, clock=clock, sleep=clock.sleep)
    await c.start(Sink())
    await clock.advance(0)
    return c, account


async def test_background_refresh_before_expiry() -> None:
    clock = ManualClock(1_800_000_000.0)
    async with fz.run_fake_zalo(fz.FakeZalo(clock=clock)) as fake:
        saved = Saved()
        c, account = await _run(clock, fake, saved)
        try:
            assert clock.sleeps == [90000 - 600]  # sleeps until 10 minutes before expiry
            await clock.advance(90000 - 601)
            assert fake.refresh_calls == 0
            await clock.advance(1)
            assert fake.refresh_calls == 1
            [pair] = saved.pairs
            assert pair.expires_at == clock.t + 90000  # expires_in arrives as the string "90000"
            assert (
                pair.refresh_token in fake.refresh_tokens and account.tokens.refresh_token in fake.spent_refresh_tokens
            )
            assert c.token_manager(fz.OA_ID).tokens == pair
            # the old access token still works until its own expiry; the next cycle is scheduled
            assert clock.sleeps[-1] == 90000 - 600
            await clock.advance(90000 - 600)
            assert fake.refresh_calls == 2 and len(saved.pairs) == 2
            assert fake.refresh_errors == []
        finally:
            await c.stop()


async def test_background_refresh_retries_after_failure() -> None:
    clock = ManualClock(1_800_000_000.0)
    async with fz.run_fake_zalo(fz.FakeZalo(clock=clock)) as fake:
        saved = Saved(fail=1)  # first persist fails: the new pair is kept in memory and saved later
        c, _ = await _run(clock, fake, saved)
        try:
            await clock.advance(90000 - 600)
            assert fake.refresh_calls == 1 and saved.pairs == []
            await clock.advance(60)  # retry: persists the pair it holds, does not refresh again
            assert fake.refresh_calls == 1 and len(saved.pairs) == 1
            assert saved.pairs[0].refresh_token in fake.refresh_tokens
        finally:
            await c.stop()


async def test_stop_cancels_refresh_task() -> None:
    clock = ManualClock(1_800_000_000.0)
    async with fz.run_fake_zalo(fz.FakeZalo(clock=clock)) as fake:
        c, _ = await _run(clock, fake, Saved())
        assert clock.waiting == 1
        await c.stop()
        await clock.advance(10**6)
        assert fake.refresh_calls == 0
