"""Write the seed corpus for the span-path fuzzer (fuzz/corpus/spans/): the
unusual encodings and malformed bodies of tests/receiver/test_fast_spans.py
and a few realistic requests. Run from the repository root:

    .venv/bin/python fuzz/make_corpus.py
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "receiver")]

import test_fast_spans as t  # noqa: E402


def main() -> int:
    out = ROOT / "fuzz" / "corpus" / "spans"
    out.mkdir(parents=True, exist_ok=True)
    seeds = dict(t.WIRE_CASES)
    seeds.update({k: v for k, v in t.BAD.items() if len(v) < 20_000})
    for n in (1, 3, 12):
        seeds[f"realistic {n}"] = t._realistic(n).SerializeToString()
    seeds["empty"] = b""
    for name, data in sorted(seeds.items()):
        (out / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)
    print(f"{len(seeds)} seeds in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
