#!/usr/bin/env python3
"""Compute Tideflow's golden window outputs with real Apache Spark (batch mode).

Writes tests/fixtures/spark/cases.json (the list of cases), then for each case
reads its input with PySpark, groups by (window, key) with Spark SQL's
window() / session_window(), and writes the expected Tideflow CLI output to
the case's `expected` file:

  one JSON object per (key, window), fields in this order:
    key, window_start, window_end (ms since epoch), then one per aggregate:
    count | sum_F | avg_F | min_F | max_F
  count and integer sums/min/max are JSON integers, avg and float min/max are
  floats, an aggregate over only nulls is null; lines sorted by
  (window_start, window_end, key as a string).

Requires: pip install 'pyspark==3.5.*' and Java 17. Run after
scripts/gen_spark_fixtures.py:  python3 scripts/spark_reference.py
"""

import json
import math
import os
import sys

from pyspark.sql import SparkSession, functions as F, types as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = "tests/fixtures/spark"

KEYED_AGGS = ["count", "sum:amount", "avg:price", "min:amount", "max:price"]

CASES = [
    # name, input file, format, window spec, aggs, key field
    ("tumbling_jsonl", "events.jsonl", "jsonl", "tumbling:10s", KEYED_AGGS, "user"),
    ("sliding_jsonl", "events.jsonl", "jsonl", "sliding:10s,5s", KEYED_AGGS, "user"),
    ("session_jsonl", "events.jsonl", "jsonl", "session:4s", KEYED_AGGS, "user"),
    ("tumbling_rfc3339", "events_rfc3339.jsonl", "jsonl", "tumbling:10s", ["count", "sum:amount"], "user"),
    ("session_csv", "events.csv", "csv", "session:4s", ["count", "sum:amount", "max:price"], "user"),
    ("sliding_csv", "events.csv", "csv", "sliding:6s,2s", ["count", "min:amount", "avg:price"], "user"),
    ("tumbling_nokey", "nokey.jsonl", "jsonl", "tumbling:5s", ["count", "sum:amount"], None),
]

# Column types of the input files. ts is an integer (ms) except in the RFC 3339 file.
FIELD_TYPES = {"ts": T.LongType(), "user": T.StringType(), "amount": T.LongType(), "price": T.DoubleType()}


def case_dicts():
    out = []
    for name, inp, fmt, window, aggs, key in CASES:
        out.append({
            "name": name,
            "input": "%s/%s" % (FIX, inp),
            "format": fmt,
            "time_field": "ts",
            "key_field": key,
            "window": window,
            "aggs": list(aggs),
            "expected": "%s/expected/%s.jsonl" % (FIX, name),
        })
    return out


def duration_seconds(s):
    """'10s' / '500ms' / '2m' -> a Spark interval string."""
    for suffix, unit in (("ms", "milliseconds"), ("s", "seconds"), ("m", "minutes"), ("h", "hours")):
        if s.endswith(suffix) and s[: -len(suffix)].isdigit():
            return "%s %s" % (s[: -len(suffix)], unit)
    raise ValueError("bad duration %r" % s)


def window_column(spec, tcol):
    kind, _, args = spec.partition(":")
    if kind == "tumbling":
        return F.window(tcol, duration_seconds(args))
    if kind == "sliding":
        size, slide = args.split(",")
        return F.window(tcol, duration_seconds(size), duration_seconds(slide))
    if kind == "session":
        return F.session_window(tcol, duration_seconds(args))
    raise ValueError("bad window spec %r" % spec)


def read_input(spark, case):
    path = os.path.join(ROOT, case["input"])
    header_fields = None
    if case["format"] == "csv":
        with open(path) as f:
            header_fields = f.readline().strip().split(",")
        schema = T.StructType([T.StructField(c, T.StringType()) for c in header_fields])
        df = spark.read.csv(path, header=True, schema=schema, mode="FAILFAST")
        for c in header_fields:
            # empty cell -> null (Spark's CSV reader already maps "" to null for
            # strings by default; be explicit anyway)
            col = F.when(F.col(c) == "", F.lit(None)).otherwise(F.col(c))
            df = df.withColumn(c, col.cast(FIELD_TYPES[c]))
        ts_col = F.timestamp_millis(F.col("ts"))
    else:
        with open(path) as f:
            first = json.loads(f.readline())
        fields = list(first.keys())
        string_ts = isinstance(first["ts"], str)
        schema = T.StructType([
            T.StructField(c, T.StringType() if (c == "ts" and string_ts) else FIELD_TYPES[c])
            for c in fields
        ])
        df = spark.read.json(path, schema=schema, mode="FAILFAST")
        if string_ts:
            ts_col = F.to_timestamp(F.col("ts"), "yyyy-MM-dd'T'HH:mm:ss.SSSXXX")
        else:
            ts_col = F.timestamp_millis(F.col("ts"))
    return df.withColumn("__t", ts_col)


def agg_columns(aggs):
    cols, names = [], []
    for a in aggs:
        if a == "count":
            cols.append(F.count(F.lit(1)).alias("count"))  # count(*): rows, nulls included
            names.append("count")
            continue
        fn, _, field = a.partition(":")
        f = {"sum": F.sum, "avg": F.avg, "min": F.min, "max": F.max}[fn]
        name = "%s_%s" % (fn, field)
        cols.append(f(F.col(field)).alias(name))
        names.append(name)
    return cols, names


def json_value(v):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        assert math.isfinite(v), v
        return v
    raise TypeError("unexpected value %r (%s)" % (v, type(v)))


def key_sort_string(k):
    return k if isinstance(k, str) else json.dumps(k)


def run_case(spark, case, check_instants_against=None):
    df = read_input(spark, case)
    n_rows = df.count()
    assert df.filter(F.col("__t").isNull()).count() == 0, "unparsed timestamps in %s" % case["input"]
    if check_instants_against is not None:
        # the RFC 3339 file must encode exactly the same instants as the integer file
        got = [r[0] for r in df.select(F.unix_millis("__t")).collect()]
        assert got == check_instants_against, "RFC 3339 instants differ from the integer file"

    w = window_column(case["window"], F.col("__t")).alias("w")
    group = [w]
    key = case["key_field"]
    if key is not None:
        group.append(F.col(key).alias("__key"))
    cols, names = agg_columns(case["aggs"])
    res = df.groupBy(*group).agg(*cols)
    sel = [
        (F.col("__key") if key is not None else F.lit(None).cast("string")).alias("key"),
        F.unix_millis(F.col("w.start")).alias("window_start"),
        F.unix_millis(F.col("w.end")).alias("window_end"),
    ] + [F.col(n) for n in names]
    rows = res.select(*sel).collect()

    out = []
    for r in rows:
        d = {"key": r["key"], "window_start": r["window_start"], "window_end": r["window_end"]}
        for n in names:
            d[n] = json_value(r[n])
        out.append(d)
    out.sort(key=lambda d: (d["window_start"], d["window_end"], key_sort_string(d["key"])))

    # cross-checks of the result against the input
    if case["window"].startswith(("tumbling", "session")) and "count" in names:
        assert sum(d["count"] for d in out) == n_rows, "windows do not partition the input"

    path = os.path.join(ROOT, case["expected"])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="\n") as f:
        for d in out:
            f.write(json.dumps(d, separators=(",", ":")) + "\n")
    return out, n_rows


def main():
    cases = case_dicts()
    with open(os.path.join(ROOT, FIX, "cases.json"), "w", newline="\n") as f:
        json.dump(cases, f, indent=2)
        f.write("\n")

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("tideflow-spark-reference")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    print("PySpark %s / Spark %s" % (__import__("pyspark").__version__, spark.version))

    # instants of the integer file, in file order, to check the RFC 3339 file against
    int_instants = [
        json.loads(line)["ts"] for line in open(os.path.join(ROOT, FIX, "events.jsonl"))
    ]
    for case in cases:
        check = int_instants if case["input"].endswith("events_rfc3339.jsonl") else None
        out, n = run_case(spark, case, check)
        print("%-18s %5d input rows -> %5d output rows  (%s)" % (case["name"], n, len(out), case["expected"]))
    spark.stop()


if __name__ == "__main__":
    sys.exit(main())
