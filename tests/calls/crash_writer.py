"""Subprocess for the crash test: records synthetic Opus into an age file until killed."""

from __future__ import annotations

import fractions
import os
import sys
import time

import av
import numpy as np

from recording.agestream import AgeStreamWriter
from recording.blobs import LocalBlobStore
from recording.oggopus import OggOpusMuxer


def opus_packets(n: int) -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "mono", "s16"
    enc.time_base = fractions.Fraction(1, 48000)
    enc.bit_rate = 64000
    out: list[bytes] = []
    rng = np.random.default_rng(1)
    for i in range(n):
        x = (rng.standard_normal(960) * 3000).astype(np.int16).reshape(1, -1)
        fr = av.AudioFrame.from_ndarray(x, format="s16", layout="mono")
        fr.sample_rate, fr.pts, fr.time_base = 48000, i * 960, fractions.Fraction(1, 48000)
        out += [bytes(p) for p in enc.encode(fr)]
    return out


def main() -> None:
    root, recipient = sys.argv[1], sys.argv[2]
    pkts = opus_packets(500)
    fake_now = [0.0]
    writer = AgeStreamWriter(LocalBlobStore(root).create("t/rec.age"), recipient)
    mux = OggOpusMuxer(writer, ["caller", "agent"], lambda: fake_now[0])
    path = os.path.join(root, "t/rec.age")
    i = 0
    while True:
        p = pkts[i % len(pkts)]
        mux.add(0, p, i * 960)
        mux.add(1, p, i * 960)
        fake_now[0] = i * 0.02
        i += 1
        if i % 50 == 0:
            time.sleep(0.01)
            if os.path.getsize(path) > 3 * 65536:
                print(f"ready {i}", flush=True)
                time.sleep(30)


if __name__ == "__main__":
    main()
