#!/usr/bin/env bash
# NEXMark in SQL: times the queries of scripts/nexmark_sql/ with `tideflow sql` on the bids of
# `tideflow bench nexmark --write-bids` (generated once into target/nexmark/bids.jsonl), with 1
# and 2 workers, and prints the median wall time of RUNS runs and the bids per second per
# worker (docs/BENCHMARKS.md, "NEXMark in SQL"). Rows go to /dev/null.
#
#   scripts/bench_nexmark_sql.sh [EVENTS] [RUNS]      (defaults 5000000 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS="${1:-5000000}"
RUNS="${2:-3}"
BIN=target/release/tideflow
BIDS=target/nexmark/bids.jsonl
[[ -x "$BIN" ]] || { echo "bench_nexmark_sql.sh: build it first: cargo build --release" >&2; exit 1; }
mkdir -p target/nexmark
if [[ ! -f "$BIDS.$EVENTS" ]]; then
    "$BIN" bench nexmark --events "$EVENTS" --write-bids "$BIDS"
    touch "$BIDS.$EVENTS"
fi
bids=$(wc -l <"$BIDS")
echo "events $EVENTS, bids $bids, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| query | workers | median s | bids/s per worker |"
echo "| --- | --- | --- | --- |"
for q in q0 q1 q2 q5_counts q11; do
    for w in 1 2; do
        times=()
        for _ in $(seq "$RUNS"); do
            start=$(date +%s.%N)
            "$BIN" sql -e "SET 'workers' = '$w'; $(cat "scripts/nexmark_sql/$q.sql")" >/dev/null 2>&1
            end=$(date +%s.%N)
            times+=("$(echo "$end - $start" | bc -l)")
        done
        median=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        rate=$(echo "$bids / $median / $w" | bc -l)
        printf '| %s | %s | %.2f | %.0f |\n' "$q" "$w" "$median" "$rate"
    done
done
