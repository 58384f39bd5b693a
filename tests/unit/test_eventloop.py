"""gateway/ops/eventloop.py: which loop `gateway serve` runs on, by EVENT_LOOP."""

from __future__ import annotations

import asyncio
import builtins
from typing import Any

import pytest
import uvloop

from gateway.config import load_config
from gateway.ops.eventloop import EventLoopUnavailable, loop_factory, run, running_loop_name


def test_default_is_uvloop() -> None:
    assert load_config({}).server.event_loop == "auto"
    name, factory = loop_factory("auto")
    assert name == "uvloop"
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()


@pytest.mark.parametrize(("choice", "expected"), [("auto", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_run_uses_the_chosen_loop(choice: str, expected: str) -> None:
    async def main() -> str:
        await asyncio.sleep(0)
        return running_loop_name()

    assert run(main(), loop_factory(choice)[1]) == expected
    assert load_config({"EVENT_LOOP": choice}).server.event_loop == choice


def test_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto falls back to the standard loop; an explicit uvloop refuses instead."""
    real_import = builtins.__import__

    def no_uvloop(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "uvloop":
            raise ImportError("no uvloop here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    assert loop_factory("auto")[0] == "asyncio"
    with pytest.raises(EventLoopUnavailable):
        loop_factory("uvloop")


def test_unknown_choice() -> None:
    with pytest.raises(ValueError):
        loop_factory("trio")
