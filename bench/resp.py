"""The Redis pub/sub reader alone (`gateway/broker/resp.py`): CPU per message reply.

    .venv/bin/python -m bench.resp                      # 200,000 replies, 300-byte payloads
    .venv/bin/python -m bench.resp --replies 50000 --payload 2000

Feeds a stream of pub/sub `message` replies (as Redis sends them to a subscribed
connection) to `RespReader` in 64 KB reads, the way the broker's reader gets them from its
socket, and prints the process CPU per reply, three rounds. There is no peer to compare
with; compare commits (run both, alternating: the machine is noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from gateway.broker.resp import IDLE, RespReader

READ = 64 * 1024


def message_reply(channel: bytes, payload: bytes) -> bytes:
    return (b"*3\r\n$7\r\nmessage\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
            % (len(channel), channel, len(payload), payload))


async def one_round(data: bytes, replies: int) -> float:
    """CPU seconds to read `replies` replies out of `data`, fed in `READ`-sized reads."""
    stream = asyncio.StreamReader(limit=len(data) + READ)
    reader = RespReader(stream)
    started = time.process_time()
    pos = got = 0
    while got < replies:
        if pos < len(data):
            stream.feed_data(data[pos:pos + READ])
            pos += READ
        while got < replies:
            reply = await reader.next(0.001)
            if reply is IDLE:
                break
            got += 1
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.resp", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--replies", type=int, default=200_000)
    p.add_argument("--payload", type=int, default=300, help="bytes of each message's payload")
    a = p.parse_args(argv)
    one = message_reply(b"izh:conv:" + b"t" * 32 + b":" + b"c" * 32, b"\x89" + b"x" * (a.payload - 1))
    data = one * a.replies
    for n in range(1, 4):
        seconds = asyncio.run(one_round(data, a.replies))
        print(f"round {n}: {a.replies:,} replies of {a.payload} bytes, CPU {seconds / a.replies * 1e6:.2f} µs/reply")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
