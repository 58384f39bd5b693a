from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.threaded import ThreadedGateway, threaded_gateway_running


@pytest.fixture(scope="module")
def threaded_gateway(tmp_path_factory) -> Iterator[ThreadedGateway]:
    with threaded_gateway_running(tmp_path_factory.mktemp("fuzz")) as tg:
        yield tg
        print(f"\nFUZZ cases: {tg.cases}")
