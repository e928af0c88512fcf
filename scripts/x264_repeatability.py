"""Does the demo's H.264 writer give the same bytes for the same frames? Encodes one seeded
clip of noise frames --repeats times through jepa_pipe.demo.media.write_video at each
--widths and counts the distinct files. The demo's .mp4 files are 80 px wide; run it beside a
loaded machine (e.g. the test suite) to see the variants (README, "The embedded demo").
    python scripts/x264_repeatability.py --repeats 20 --widths 80 128
Prints one JSON object."""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np

from jepa_pipe.demo.media import write_video


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--widths", type=int, nargs="+", default=[80, 128])
    ap.add_argument("--frames", type=int, default=64)
    args = ap.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for width in args.widths:
            rng = np.random.default_rng(0)
            clip = rng.integers(0, 255, (args.frames, 64, width, 3), dtype=np.uint8)
            clip[:, 10:30, 10:30] = 200
            digests = []
            for i in range(args.repeats):
                path = Path(tmp) / f"w{width}_{i}.mp4"
                write_video(path, clip, 8)
                digests.append(hashlib.md5(path.read_bytes()).hexdigest())
            out[str(width)] = {"repeats": args.repeats, "distinct_files": len(set(digests))}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
