"""Differential fuzzer for the compiled span path (atheris, i.e. libFuzzer for Python).

Every input is decoded by the compiled walker and by the reference path (upb +
the Python loop) under three receiver settings; any difference in what is
accepted, rejected, labelled, bucketed or answered is a crash, and so is any
memory error when the extension is built with AddressSanitizer.

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python fuzz/fuzz_spans.py fuzz/corpus/spans -max_total_time=600

With AddressSanitizer (gcc; the interpreter preloads the runtime):

    CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -g -O1" LDFLAGS="-fsanitize=address,undefined" \
        .venv/bin/python setup.py build_ext --build-lib /tmp/asan
    TOCSIN_SPANWIRE_PATH=$(ls /tmp/asan/collector/receiver/_spanwire*.so) ASAN_OPTIONS=detect_leaks=0 \
        LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
        .venv/bin/python fuzz/fuzz_spans.py fuzz/corpus/spans -max_total_time=600

For coverage feedback from inside the C code, build it with clang and
``-fsanitize=fuzzer-no-link,address`` instead (gcc cannot instrument for libFuzzer).
New inputs that find new coverage are written to the corpus directory.
"""
from __future__ import annotations

import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "receiver")]

with atheris.instrument_imports():
    import spans_diff
    from collector.receiver import fastspans, spans

from collector.receiver.settings import ReceiverSettings  # noqa: E402

SETTINGS = [ReceiverSettings(),
            ReceiverSettings(max_attribute_length=12, span_dimensions=("deployment.environment", "peer")),
            ReceiverSettings(max_attribute_length=6, max_items_per_request=40,
                             span_dimensions=("http.route", "service.name", "peer", "peer"))]


def test_one_input(data: bytes) -> None:
    for s in SETTINGS:
        spans_diff.compare(data, s)


def main() -> None:
    use, why = fastspans.choose()
    if not use:
        sys.exit(f"the compiled path is off: {why}")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
