#!/usr/bin/env bash
# Scaling benchmark (docs/BENCHMARKS.md "Scaling: workers and processes"): the same
# `tideflow run` job on 1 worker, 2 workers in one process, and 2 processes of 1 worker
# (`tideflow cluster --local 2`), median of RUNS runs each, events/s = records / wall time.
#
#   scripts/bench_scaling.sh            # COUNT=20000000 RUNS=5 by default
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-20000000}
RUNS=${RUNS:-5}
cargo build --release --quiet
BIN=target/release/tideflow
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
# 100 M rows/s of event time: the generator never waits, the job runs as fast as it can.
ARGS=(--input "rate:rows_per_sec=100000000,keys=1000,count=$COUNT,seed=1,partitions=4"
      --time-field ts --key-field key --agg count --agg sum:value --window tumbling:10ms)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run_shape() {
    local name=$1; shift
    local times=()
    for _ in $(seq "$RUNS"); do
        local start end
        start=$(date +%s.%N)
        "$@" --output "$OUT/$name.jsonl" 2>/dev/null
        end=$(date +%s.%N)
        times+=("$(echo "$end - $start" | bc -l)")
    done
    local t
    t=$(printf '%s\n' "${times[@]}" | median)
    printf '| %s | %.3f s | %.2f M |\n' "$name" "$t" "$(echo "$COUNT / $t / 1000000" | bc -l)"
}

echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) vCPUs, COUNT=$COUNT, median of $RUNS runs"
echo
echo "| shape | median wall time | events/s |"
echo "|---|---:|---:|"
run_shape "1 process x 1 worker" "$BIN" run "${ARGS[@]}" --workers 1
run_shape "1 process x 2 workers" "$BIN" run "${ARGS[@]}" --workers 2
run_shape "2 processes x 1 worker" "$BIN" cluster --local 2 -- "${ARGS[@]}" --workers 1
cmp "$OUT/1 process x 1 worker.jsonl" "$OUT/2 processes x 1 worker.jsonl"
cmp "$OUT/1 process x 1 worker.jsonl" "$OUT/1 process x 2 workers.jsonl"
echo
echo "(outputs of the three shapes are identical)"
