#!/usr/bin/env bash
# Build the compiled span path once with AddressSanitizer and UndefinedBehaviorSanitizer
# (into a temporary directory, leaving the normal build alone), then run the differential
# tests and the fuzz corpus against that build. .ci/run calls it; it also works by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CC=${CC:-gcc}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
CC="$CC" CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1" \
  LDFLAGS="-fsanitize=address,undefined" \
  "$PY" setup.py -q build_ext --build-lib "$out/lib" --build-temp "$out/tmp" >"$out/build.log" 2>&1 \
  || { cat "$out/build.log"; echo "asan: the sanitizer build failed"; exit 1; }
so=$(ls "$out"/lib/collector/receiver/_spanwire*.so)
# the C core alone (no interpreter), over the corpus: fuzz/spanwire_fuzzer.c built as a replay driver
"$PY" fuzz/dump_schema.py >"$out/schema.bin"
"$CC" -DREPLAY_MAIN -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
  fuzz/spanwire_fuzzer.c collector/receiver/spanwire/spanwire.c -lm -o "$out/spanwire_replay"
SPANWIRE_SCHEMA="$out/schema.bin" ASAN_OPTIONS=detect_leaks=1 "$out/spanwire_replay" fuzz/corpus/spans/*
echo "asan: differential tests and the fuzz corpus against $so"
TOCSIN_SPANWIRE_PATH="$so" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
LD_PRELOAD="$("$CC" -print-file-name=libasan.so) $("$CC" -print-file-name=libubsan.so)" \
  "$PY" -m pytest -q -p no:cacheprovider -o addopts="" tests/receiver/test_fast_spans.py "$@"
