#!/usr/bin/env python3
"""Generate the deterministic input files for Tideflow's Spark golden tests.

Writes into tests/fixtures/spark/ (relative to the repo root):

  events.jsonl          1500 records {"ts": <int ms>, "user", "amount", "price"}
  events_rfc3339.jsonl  the same records, ts as an RFC 3339 string (ms precision;
                        ~10% written with a +02:00 offset, the rest with Z)
  events.csv            the same records as CSV (header ts,user,amount,price;
                        a null price is an empty cell)
  nokey.jsonl           300 records {"ts": <int ms>, "amount"} (no key field)

Properties the tests rely on (all asserted below):
  * timestamps are out of order by at most 3000 ms relative to the maximum seen
    so far (so a 5 s watermark delay drops nothing);
  * some per-user gaps exceed 4 s (session windows of 4 s split);
  * a few same-user pairs are exactly 4000 ms apart with no event of that user
    strictly between them (sessions that merely touch);
  * about 2% of prices are null, and at least one (user, 10 s tumbling window)
    has only null prices (so avg/max over only nulls is null).

Deterministic: everything comes from random.Random(42). Standard library only.
Usage: python3 scripts/gen_spark_fixtures.py
"""

import csv
import datetime as dt
import json
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "spark")

START_MS = 1_700_000_000_000
N_EVENTS = 1500
N_NOKEY = 300
MAX_DISORDER_MS = 3000
USERS = ["u%02d" % i for i in range(12)]
SESSION_GAP_MS = 4000
TUMBLE_MS = 10_000


def gen_clock_ts(rng, n, quiet_every):
    """Timestamps: a clock advancing 0..400 ms per record (with an occasional
    quiet stretch of 5..9 s), each record jittered backwards by 0..3000 ms,
    never below START_MS."""
    clock = START_MS
    out = []
    for i in range(n):
        if i > 0:
            clock += rng.randint(0, 400)
            if quiet_every and rng.randrange(quiet_every) == 0:
                clock += rng.randint(5000, 9000)
        jitter = rng.randint(0, MAX_DISORDER_MS) if i > 0 else 0
        out.append(max(START_MS, clock - jitter))
    return out


def max_disorder(ts_list):
    worst, seen = 0, None
    for t in ts_list:
        if seen is not None:
            worst = max(worst, seen - t)
        seen = t if seen is None else max(seen, t)
    return worst


def touching_pair_ok(events, i, j):
    """events[i] and events[j] have the same user, ts differ by exactly the gap,
    and no event of that user lies strictly between them in time."""
    a, b = events[i], events[j]
    if a["user"] != b["user"] or b["ts"] - a["ts"] != SESSION_GAP_MS:
        return False
    return not any(
        e["user"] == a["user"] and a["ts"] < e["ts"] < b["ts"] for e in events
    )


def make_touching_pairs(rng, events, want):
    """Rewrite a few records so that `want` same-user pairs are exactly
    SESSION_GAP_MS apart with no event of that user strictly in between.
    Other events of that user inside the interval are moved to another user."""
    made = []
    used = set()
    attempts = 0
    while len(made) < want:
        attempts += 1
        assert attempts < 10_000, "could not build touching pairs"
        i = rng.randrange(50, len(events) - 200)
        a = events[i]
        target = a["ts"] + SESSION_GAP_MS
        # the record (after i in file order) whose ts is closest to target
        j = min(range(i + 1, len(events)), key=lambda k: abs(events[k]["ts"] - target))
        if abs(events[j]["ts"] - target) > 300 or i in used or j in used:
            continue
        trial = [dict(e) for e in events]
        trial[j]["ts"] = target
        trial[j]["user"] = a["user"]
        others = [u for u in USERS if u != a["user"]]
        for k, e in enumerate(trial):
            if k not in (i, j) and e["user"] == a["user"] and a["ts"] < e["ts"] < target:
                e["user"] = rng.choice(others)
        if max_disorder([e["ts"] for e in trial]) > MAX_DISORDER_MS:
            continue
        events[:] = trial
        used.update((i, j))
        made.append((i, j))
    # later rewrites may have disturbed earlier pairs: re-check all of them
    for i, j in made:
        assert touching_pair_ok(events, i, j), (i, j)
    return made


def null_out_one_window(rng, events):
    """Pick a (user, 10 s tumbling window) with 1..3 events and make all of
    their prices null."""
    groups = {}
    for k, e in enumerate(events):
        groups.setdefault((e["user"], e["ts"] // TUMBLE_MS), []).append(k)
    candidates = sorted(g for g, ks in groups.items() if 1 <= len(ks) <= 3)
    g = candidates[rng.randrange(len(candidates))]
    for k in groups[g]:
        events[k]["price"] = None
    return g


def rfc3339(ts_ms, plus_two):
    tz = dt.timezone(dt.timedelta(hours=2)) if plus_two else dt.timezone.utc
    d = dt.datetime.fromtimestamp(ts_ms // 1000, tz).replace(microsecond=(ts_ms % 1000) * 1000)
    s = d.strftime("%Y-%m-%dT%H:%M:%S") + ".%03d" % (ts_ms % 1000)
    return s + ("+02:00" if plus_two else "Z")


def main():
    rng = random.Random(42)
    os.makedirs(OUT, exist_ok=True)

    # ---- keyed events ----
    ts_list = gen_clock_ts(rng, N_EVENTS, quiet_every=60)
    events = []
    for t in ts_list:
        price = None if rng.random() < 0.02 else round(rng.uniform(0.5, 99.5), 2)
        events.append({
            "ts": t,
            "user": rng.choice(USERS),
            "amount": rng.randint(-50, 1000),
            "price": price,
        })
    pairs = make_touching_pairs(rng, events, want=3)
    null_group = null_out_one_window(rng, events)

    # sanity checks on the properties the tests rely on
    assert all(e["ts"] >= START_MS for e in events)
    assert max_disorder([e["ts"] for e in events]) <= MAX_DISORDER_MS
    by_user = {}
    for e in events:
        by_user.setdefault(e["user"], []).append(e["ts"])
    big_gaps = sum(
        1 for ts in by_user.values() for a, b in zip(sorted(ts), sorted(ts)[1:])
        if b - a > SESSION_GAP_MS
    )
    assert big_gaps >= 10, big_gaps
    n_null = sum(e["price"] is None for e in events)
    assert 10 <= n_null <= 60, n_null

    with open(os.path.join(OUT, "events.jsonl"), "w", newline="\n") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")

    with open(os.path.join(OUT, "events_rfc3339.jsonl"), "w", newline="\n") as f:
        for e in events:
            r = dict(e)
            r["ts"] = rfc3339(e["ts"], plus_two=rng.random() < 0.10)
            f.write(json.dumps(r) + "\n")

    with open(os.path.join(OUT, "events.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["ts", "user", "amount", "price"])
        for e in events:
            w.writerow([e["ts"], e["user"], e["amount"], "" if e["price"] is None else repr(e["price"])])

    # ---- unkeyed events ----
    nk_ts = gen_clock_ts(rng, N_NOKEY, quiet_every=40)
    assert max_disorder(nk_ts) <= MAX_DISORDER_MS
    with open(os.path.join(OUT, "nokey.jsonl"), "w", newline="\n") as f:
        for t in nk_ts:
            f.write(json.dumps({"ts": t, "amount": rng.randint(-50, 1000)}) + "\n")

    print("events: %d (null prices: %d, user gaps > 4s: %d, max disorder: %d ms)"
          % (len(events), n_null, big_gaps, max_disorder([e["ts"] for e in events])))
    print("touching pairs (file line indices, 0-based):",
          ", ".join("%d/%d %s %d->%d" % (i, j, events[i]["user"], events[i]["ts"], events[j]["ts"])
                    for i, j in pairs))
    print("all-null-price group: user %s, window [%d, %d)"
          % (null_group[0], null_group[1] * TUMBLE_MS, (null_group[1] + 1) * TUMBLE_MS))
    print("nokey: %d (max disorder: %d ms)" % (len(nk_ts), max_disorder(nk_ts)))


if __name__ == "__main__":
    main()
