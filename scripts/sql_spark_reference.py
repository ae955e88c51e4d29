#!/usr/bin/env python3
"""Golden outputs of `tideflow sql` computed by Apache Spark SQL (batch mode).

For each case below, runs the query in Spark SQL over the same input file and writes
tests/fixtures/sql/expected/<case>.jsonl, then tests/fixtures/sql/cases.json (the tideflow
script of each case and its expected file), which cli/tests/cli/sql.rs runs with 1 and 2
workers. Spark-dialect queries run in Spark literally; Flink-dialect ones (TUMBLE, HOP, SESSION
in FROM) run as their Spark translation, given beside them.

The events are tests/fixtures/spark/events.jsonl (see the README there): `ts` is BIGINT ms in
the file, so the Spark view `events` reads it as `timestamp_millis(ts)`, and every TIMESTAMP
column Spark returns is written as ms since the epoch (as tideflow writes a BIGINT event
time's window bounds). Rows are sorted by their JSON text; the test sorts tideflow's likewise.
Unwindowed queries run in complete mode in tideflow: the test compares its last table.

Run with scripts/sql_spark_reference.sh (it installs pyspark into a cache directory).
"""

import json
import os
import sys

from pyspark.sql import SparkSession, functions as F, types as T

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = "tests/fixtures/sql"
INPUT = "tests/fixtures/spark/events.jsonl"
# The same events as CSV (a null price an empty cell).
DDL_CSV = (
    "CREATE TABLE events_csv (ts BIGINT, user STRING, amount BIGINT, price DOUBLE,\n"
    "  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)\n"
    "WITH ('connector' = 'file', 'path' = 'tests/fixtures/spark/events.csv', 'format' = 'csv');\n"
)
# A static table for joins: ten of the twelve users (u10 and u11 have no row), u03 twice.
USERS = "tests/fixtures/sql/users.jsonl"
DDL_USERS = (
    "CREATE TABLE users (id STRING, credit BIGINT, segment STRING)\n"
    "WITH ('connector' = 'file', 'path' = '%s', 'mode' = 'static');\n" % USERS
)
# The same events with `ts` as RFC 3339 text: a TIMESTAMP(3) column.
INPUT_RFC3339 = "tests/fixtures/spark/events_rfc3339.jsonl"

DDL = (
    "CREATE TABLE events (ts BIGINT, user STRING, amount BIGINT, price DOUBLE,\n"
    "  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)\n"
    "WITH ('connector' = 'file', 'path' = '%s', 'format' = 'jsonl');\n" % INPUT
)
DDL_TIMESTAMP = (
    "CREATE TABLE events_ts (ts TIMESTAMP(3), user STRING, amount BIGINT, price DOUBLE,\n"
    "  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND)\n"
    "WITH ('connector' = 'file', 'path' = '%s', 'format' = 'jsonl');\n" % INPUT_RFC3339
)

# name, tideflow query, Spark query (None: the same text), complete mode (unwindowed).
CASES = [
    (
        "spark_timestamp_column",
        "SELECT user, window.start AS ws, window.end AS we, COUNT(*) AS n, MAX(ts) AS last,\n"
        "  HOUR(window.start) AS h, MINUTE(MAX(ts)) AS mi, SECOND(MIN(ts)) AS s,\n"
        "  EXTRACT(DAY FROM window.start) AS d, DATE_FORMAT(MAX(ts), 'yyyy-MM-dd HH:mm:ss.SSS') AS f\n"
        "FROM events_ts WHERE ts >= CAST('2023-11-14T22:13:25Z' AS TIMESTAMP)\n"
        "GROUP BY user, window(ts, '10 seconds')",
        None,
        False,
    ),
    (
        "spark_tumbling_aggregates",
        "SELECT user, window.start AS ws, window.end AS we, COUNT(*) AS n, COUNT(price) AS np,\n"
        "  SUM(amount) AS s, AVG(price) AS a, MIN(amount) AS mn, MAX(price) AS mx,\n"
        "  COUNT(DISTINCT amount) AS d\n"
        "FROM events GROUP BY user, window(ts, '10 seconds')",
        None,
        False,
    ),
    (
        "spark_csv_input",
        "SELECT user, window.start AS ws, COUNT(*) AS n, COUNT(price) AS np, SUM(price) AS s,\n"
        "  MAX(amount) AS mx\n"
        "FROM events_csv WHERE amount % 2 = 0 GROUP BY user, window(ts, '10 seconds')",
        None,
        False,
    ),
    (
        "spark_sliding",
        "SELECT user, window.start AS ws, window.end AS we, COUNT(*) AS n, SUM(price) AS s,\n"
        "  MIN(price) AS mn\n"
        "FROM events GROUP BY user, window(ts, '10 seconds', '5 seconds')",
        None,
        False,
    ),
    (
        "spark_session",
        "SELECT user, session_window.start AS ws, session_window.end AS we, COUNT(*) AS n,\n"
        "  SUM(amount) AS s, MAX(price) AS mx\n"
        "FROM events GROUP BY user, session_window(ts, '4 seconds')",
        None,
        False,
    ),
    (
        "spark_global_window",
        "SELECT window.start AS ws, window.end AS we, COUNT(*) AS n, SUM(amount) AS s\n"
        "FROM events GROUP BY window(ts, '5 seconds')",
        None,
        False,
    ),
    (
        "spark_where_expressions",
        "SELECT user, window.start AS ws, COUNT(*) AS n, SUM(amount * 2 - 1) AS s,\n"
        "  AVG(CASE WHEN price IS NULL THEN 0 ELSE price END) AS a,\n"
        "  SUM(CAST(price * 100 AS BIGINT)) AS cents, MAX(amount / 3) AS third,\n"
        "  SUM(COALESCE(price, -1.0)) AS filled\n"
        "FROM events\n"
        "WHERE amount > 100 AND (price IS NULL OR price < 50.0) AND NOT user IN ('u03', 'u04')\n"
        "GROUP BY user, window(ts, '10 seconds')",
        None,
        False,
    ),
    (
        "spark_having",
        "SELECT user, window.start AS ws, window.end AS we, COUNT(*) AS n, SUM(amount) AS s\n"
        "FROM events GROUP BY user, window(ts, '10 seconds')\n"
        "HAVING COUNT(*) > 4 AND SUM(amount) > 2500",
        None,
        False,
    ),
    (
        "spark_keys_and_strings",
        "SELECT UPPER(user) AS u, amount % 2 AS parity, LENGTH(user) + 1 AS l,\n"
        "  window.start AS ws, COUNT(*) AS n, MAX(amount) AS mx\n"
        "FROM events\n"
        "WHERE user LIKE 'u0%' OR SUBSTRING(user, 2, 2) = '11' OR CONCAT(user, '!') = 'u10!'\n"
        "GROUP BY user, amount % 2, window(ts, '10 seconds')",
        None,
        False,
    ),
    (
        "spark_running_aggregate",
        "SELECT user, COUNT(*) AS n, SUM(amount) AS s, AVG(price) AS a, MAX(price) AS mx\n"
        "FROM events GROUP BY user",
        None,
        True,
    ),
    (
        "spark_projection",
        "SELECT ts, user, amount * 2 AS a2, UPPER(user) AS u,\n"
        "  CASE WHEN price IS NULL THEN 'none' WHEN price > 50.0 THEN 'high' ELSE 'low' END AS band\n"
        "FROM events WHERE amount BETWEEN 100 AND 200",
        None,
        False,
    ),
    (
        "spark_static_join",
        "SELECT e.user, window.start AS ws, COUNT(*) AS n, SUM(u.credit) AS credit,\n"
        "  COUNT(DISTINCT u.segment) AS segments, MAX(e.amount) AS mx\n"
        "FROM events e JOIN users u ON e.user = u.id\n"
        "GROUP BY e.user, window(e.ts, '10 seconds')",
        None,
        False,
    ),
    (
        "spark_static_left_join",
        "SELECT e.user, COUNT(*) AS n, MAX(u.credit) AS credit, SUM(e.amount) AS s\n"
        "FROM events e LEFT JOIN users u ON e.user = u.id GROUP BY e.user",
        None,
        True,
    ),
    (
        "flink_tumble",
        "SELECT user, window_start, window_end, COUNT(*) AS n, SUM(amount) AS s, AVG(price) AS a\n"
        "FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '10' SECOND))\n"
        "GROUP BY window_start, window_end, user",
        "SELECT user, window.start AS window_start, window.end AS window_end, COUNT(*) AS n,\n"
        "  SUM(amount) AS s, AVG(price) AS a\n"
        "FROM events GROUP BY user, window(ts, '10 seconds')",
        False,
    ),
    (
        "flink_hop",
        "SELECT user, window_start, window_end, COUNT(*) AS n, MAX(amount) AS mx\n"
        "FROM TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '2' SECOND, INTERVAL '6' SECOND))\n"
        "WHERE price IS NOT NULL\n"
        "GROUP BY window_start, window_end, user",
        "SELECT user, window.start AS window_start, window.end AS window_end, COUNT(*) AS n,\n"
        "  MAX(amount) AS mx\n"
        "FROM events WHERE price IS NOT NULL GROUP BY user, window(ts, '6 seconds', '2 seconds')",
        False,
    ),
    (
        "flink_session",
        "SELECT user, window_start, window_end, COUNT(*) AS n, SUM(amount) AS s\n"
        "FROM TABLE(SESSION(TABLE events PARTITION BY user, DESCRIPTOR(ts), INTERVAL '4' SECOND))\n"
        "GROUP BY window_start, window_end, user",
        "SELECT user, session_window.start AS window_start, session_window.end AS window_end,\n"
        "  COUNT(*) AS n, SUM(amount) AS s\n"
        "FROM events GROUP BY user, session_window(ts, '4 seconds')",
        False,
    ),
]


def spark_session():
    return (
        SparkSession.builder.master("local[1]")
        .appName("tideflow-sql-reference")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )


def rows_of(df, rfc3339):
    """The rows as JSON texts, TIMESTAMP columns as ms since the epoch (as RFC 3339 UTC text
    with milliseconds if `rfc3339`, as tideflow writes a TIMESTAMP(3) event time's)."""
    columns = []
    for field in df.schema.fields:
        quoted = "`%s`" % field.name.replace("`", "``")
        if isinstance(field.dataType, T.TimestampType) and rfc3339:
            pattern = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
            columns.append(F.expr("date_format(%s, \"%s\")" % (quoted, pattern)).alias(field.name))
        elif isinstance(field.dataType, T.TimestampType):
            columns.append(F.expr("unix_millis(%s)" % quoted).alias(field.name))
        else:
            columns.append(F.col(quoted))
    out = []
    for row in df.select(*columns).collect():
        obj = {}
        for name, value in zip(df.columns, row):
            if isinstance(value, float) and value != value:
                value = "NaN"
            obj[name] = value
        out.append(json.dumps(obj, separators=(",", ":")))
    return sorted(out)


def main():
    os.chdir(ROOT)
    spark = spark_session()
    schema = T.StructType([
        T.StructField("ts", T.LongType()),
        T.StructField("user", T.StringType()),
        T.StructField("amount", T.LongType()),
        T.StructField("price", T.DoubleType()),
    ])
    raw = spark.read.schema(schema).json(INPUT)
    raw.selectExpr("timestamp_millis(ts) AS ts", "user", "amount", "price").createOrReplaceTempView("events")
    text = schema.fields[:]
    text[0] = T.StructField("ts", T.StringType())
    users = T.StructType([
        T.StructField("id", T.StringType()),
        T.StructField("credit", T.LongType()),
        T.StructField("segment", T.StringType()),
    ])
    csv = spark.read.schema(schema).option("header", "true").csv("tests/fixtures/spark/events.csv")
    csv.selectExpr("timestamp_millis(ts) AS ts", "user", "amount", "price").createOrReplaceTempView("events_csv")
    spark.read.schema(users).json(USERS).createOrReplaceTempView("users")
    raw_ts = spark.read.schema(T.StructType(text)).json(INPUT_RFC3339)
    raw_ts.selectExpr("CAST(ts AS TIMESTAMP) AS ts", "user", "amount", "price").createOrReplaceTempView("events_ts")
    os.makedirs(os.path.join(FIX, "expected"), exist_ok=True)
    cases = []
    for name, query, spark_query, complete in CASES:
        rfc3339 = "FROM events_ts" in query
        rows = rows_of(spark.sql(spark_query or query), rfc3339)
        expected = "%s/expected/%s.jsonl" % (FIX, name)
        with open(expected, "w") as f:
            f.write("".join(row + "\n" for row in rows))
        script = DDL_TIMESTAMP if rfc3339 else DDL_CSV if "FROM events_csv" in query else DDL
        if "JOIN users" in query:
            script += DDL_USERS
        if complete:
            script += "SET 'output-mode' = 'complete';\n"
        script += query + ";\n"
        cases.append({"name": name, "script": script, "complete": complete, "expected": expected})
        print("%s: %d rows" % (name, len(rows)), file=sys.stderr)
    with open(os.path.join(FIX, "cases.json"), "w") as f:
        json.dump(cases, f, indent=2)
        f.write("\n")
    spark.stop()


if __name__ == "__main__":
    main()
