"""Flink SQL (PyFlink, apache-flink from PyPI, on the machine's Java 17).

The job, in streaming mode, parallelism 1: a filesystem source table over the dataset's
directory (ts BIGINT, key STRING, value INT, rt, WATERMARK FOR rt AS rt - INTERVAL '0.001'
SECOND), a TUMBLE(TABLE src, DESCRIPTOR(rt), INTERVAL '1' SECOND) count per key, inserted
into a filesystem sink table (JSON). The watermark is Flink's "ascending timestamps" strategy,
its nearest to a delay of 0 where a record with the largest event time seen so far is not
late (as in Tideflow and Spark): with `WATERMARK FOR rt AS rt` ("strictly ascending") the
other records of the millisecond that reached a window's last ms are dropped as late whenever
the periodic watermark is emitted between two of them (seen: 9 records lost in one window of
2 M, in a different window each run). Flink's CSV format has no header option: with
'csv.ignore-parse-errors' the header line is read as a row of nulls, which gets event time 0
(rt is TO_TIMESTAMP_LTZ(COALESCE(ts, 0), 3): a null rowtime fails the job) and is dropped
after the window by WHERE ts IS NOT NULL. The bounded source ends with the final
watermark, so every window is written.

Run by the driver as: VENV_PYTHON peer_flink.py INPUT_DIR FORMAT OUT_DIR (rows in OUT_DIR/rows)
"""

import sys

from engine import Peer

PEER = Peer("flink", "apache-flink==2.3.0", "pyflink", "peer_flink.py", "Flink SQL, parallelism 1",
            "Flink SQL, {format}, parallelism 1", reads_directory=True)
NAME, version, jobs = PEER.name, PEER.version, PEER.jobs


def job(input_dir, fmt, out_dir):
    from pyflink.table import EnvironmentSettings, TableEnvironment

    env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = env.get_config()
    config.set("parallelism.default", "1")
    config.set("table.local-time-zone", "UTC")
    config.set("pipeline.name", "compare")
    source_format = ("'format' = 'csv', 'csv.ignore-parse-errors' = 'true'" if fmt == "csv"
                     else "'format' = 'json'")
    env.execute_sql(f"""
        CREATE TABLE src (
            ts BIGINT, `key` STRING, `value` INT,
            rt AS TO_TIMESTAMP_LTZ(COALESCE(ts, 0), 3),
            WATERMARK FOR rt AS rt - INTERVAL '0.001' SECOND
        ) WITH ('connector' = 'filesystem', 'path' = '{input_dir}', {source_format})""")
    env.execute_sql(f"""
        CREATE TABLE sink (window_start TIMESTAMP(3), `key` STRING, `count` BIGINT)
        WITH ('connector' = 'filesystem', 'path' = '{out_dir}/rows', 'format' = 'json')""")
    env.execute_sql("""
        INSERT INTO sink
        SELECT window_start, `key`, COUNT(*)
        FROM TABLE(TUMBLE(TABLE src, DESCRIPTOR(rt), INTERVAL '1' SECOND))
        WHERE ts IS NOT NULL
        GROUP BY window_start, window_end, `key`""").wait()


if __name__ == "__main__":
    job(*sys.argv[1:])
