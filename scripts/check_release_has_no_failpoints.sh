#!/usr/bin/env bash
# Checks that a binary built without the `failpoints` feature (a release build) has no fault
# hooks: with TIDEFLOW_FAULT=after-parts, a run with snapshots must exit 0 and write exactly
# what a run without it writes (a build with the hooks would abort at its first snapshot).
#
#   scripts/check_release_has_no_failpoints.sh [BINARY]   # default: target/release/tideflow
#
# Prints one line saying what is wrong and exits 1 if the check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/tideflow}
name=check_release_has_no_failpoints
if [ ! -x "$bin" ]; then
    echo "$name: $bin is not an executable (build it with cargo build --release)"
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 0 199); do
    printf '{"ts":%d,"key":"k%d"}\n' $((i * 10)) $((i % 7))
done >"$work/input.jsonl"

# Runs the job with its own output and checkpoint directory, named $1.
run() {
    "$bin" run --input "$work/input.jsonl" --time-field ts --key-field key --agg count \
        --window tumbling:100ms --output "$work/$1.jsonl" \
        --checkpoint-dir "$work/$1.checkpoints" --snapshot-interval 1ms \
        >"$work/$1.stdout" 2>"$work/$1.stderr"
}

unset TIDEFLOW_FAULT
if ! run plain; then
    echo "$name: $bin failed without a fault: $(head -n 1 "$work/plain.stderr")"
    exit 1
fi
status=0
# (The braces keep the shell's own "Aborted" line off the terminal.)
{ TIDEFLOW_FAULT=after-parts run faulted; } 2>/dev/null || status=$?
if [ "$status" -ne 0 ]; then
    echo "$name: $bin exited $status with TIDEFLOW_FAULT=after-parts (it has fault hooks: built with the failpoints feature?): $(head -n 1 "$work/faulted.stderr")"
    exit 1
fi
if ! cmp -s "$work/plain.jsonl" "$work/faulted.jsonl" || ! cmp -s "$work/plain.stdout" "$work/faulted.stdout"; then
    echo "$name: $bin wrote other output with TIDEFLOW_FAULT=after-parts than without it"
    exit 1
fi
echo "$name: $bin ignores TIDEFLOW_FAULT"
