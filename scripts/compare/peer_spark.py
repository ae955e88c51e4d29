"""Spark Structured Streaming (pyspark from PyPI, on the machine's Java 17).

The job: a streaming file source over the dataset's directory with an explicit schema,
ts_ts = timestamp_millis(ts), withWatermark("ts_ts", "0 seconds"),
groupBy(window(ts_ts, "1 second"), key).count(), append mode, trigger availableNow, local[1],
JSON part files out. Spark's watermark only moves between micro-batches and nothing closes the
windows at the end of the input, so the last window (the one holding the last event) is never
written: its rows are checked against the expected rows of the windows a watermark at the last
event time has closed.

Run by the driver as: VENV_PYTHON peer_spark.py INPUT_DIR FORMAT OUT_DIR (rows in OUT_DIR/rows)
"""

import sys

from engine import Job, Peer

PEER = Peer("spark", "pyspark==4.3.0", "pyspark", "peer_spark.py", "Spark Structured Streaming, local[1]",
            "Spark Structured Streaming, {format}, local[1]", reads_directory=True, check=Job.CHECK_CLOSED,
            env=lambda python: {"PYSPARK_PYTHON": str(python), "SPARK_LOCAL_IP": "127.0.0.1"})
NAME, version, jobs = PEER.name, PEER.version, PEER.jobs


def job(input_dir, fmt, out_dir):
    from pyspark.sql import SparkSession, functions as F, types as T

    spark = (SparkSession.builder.master("local[1]").appName("compare")
             .config("spark.sql.shuffle.partitions", "1")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.driver.memory", "4g")
             .getOrCreate())
    spark.sparkContext.setLogLevel("WARN")
    schema = T.StructType([T.StructField("ts", T.LongType()), T.StructField("key", T.StringType()),
                           T.StructField("value", T.IntegerType())])
    reader = spark.readStream.schema(schema)
    events = reader.option("header", "true").csv(input_dir) if fmt == "csv" else reader.json(input_dir)
    counts = (events.withColumn("ts_ts", F.timestamp_millis("ts"))
              .withWatermark("ts_ts", "0 seconds")
              .groupBy(F.window("ts_ts", "1 second"), "key").count()
              .select(F.unix_millis(F.col("window.start")).alias("window_start"), "key", "count"))
    query = (counts.writeStream.outputMode("append").format("json")
             .option("path", f"{out_dir}/rows").option("checkpointLocation", f"{out_dir}/checkpoint")
             .trigger(availableNow=True).start())
    query.awaitTermination()
    spark.stop()


if __name__ == "__main__":
    job(*sys.argv[1:])
