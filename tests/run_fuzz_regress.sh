#!/usr/bin/env bash
# Replays each fuzz target's corpus (tests/fuzz/corpus/<name>/) through the
# target built with the standalone driver: a crash or sanitizer report fails.
set -u
fail=0
for t in "$@"; do
	name=$(basename "$t")
	corpus=tests/fuzz/corpus/${name#fuzz_}
	[ -d "$corpus" ] || { echo "no corpus for $name at $corpus"; fail=1; continue; }
	"$t" "$corpus" || { echo "FAILED: $name"; fail=1; }
done
exit $fail
