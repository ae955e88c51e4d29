"""Reads a Tideflow Parquet output directory (by its commit log) or a Delta table with the real
readers (pyarrow, deltalake) and prints what they see, for the tests to compare with the JSON
lines output of the same job. Run through scripts/lake-tools.sh, which installs them:

    scripts/lake-tools.sh read parquet DIR     the files _tideflow_log/ lists, read with pyarrow
    scripts/lake-tools.sh read delta DIR       the Delta table at its latest version (deltalake)
    scripts/lake-tools.sh read write-parquet IN.jsonl OUT.parquet ROWS
                                               IN's rows as a Parquet file written by pyarrow
                                               (types inferred), in row groups of ROWS rows

Prints one JSON line with the schema, [[name, type, nullable], ...] (pyarrow's type names:
int64, double, string, bool, timestamp[ms, tz=UTC]), then one JSON object per row. Timestamps
are printed as integer milliseconds since the epoch; NaN and the infinities as the strings
"NaN", "Infinity" and "-Infinity", as the JSON lines output writes them.
"""

import datetime
import json
import math
import os
import sys


def parquet_table(directory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    log = os.path.join(directory, "_tideflow_log")
    entries = sorted(name for name in os.listdir(log) if name.endswith(".json") and not name.startswith("."))
    tables = []
    for name in entries:
        with open(os.path.join(log, name)) as f:
            entry = json.load(f)
        for file in entry["files"]:
            table = pq.read_table(os.path.join(directory, file["name"]))
            if table.num_rows != file["rows"]:
                sys.exit(f"read_lake.py: {file['name']} has {table.num_rows} rows, its log entry {name} says {file['rows']}")
            tables.append(table)
    if not tables:
        sys.exit(f"read_lake.py: the commit log of {directory} lists no file")
    schema = tables[0].schema
    for table in tables[1:]:
        if table.schema != schema:
            sys.exit(f"read_lake.py: the files of {directory} differ in schema: {schema} and {table.schema}")
    return pa.concat_tables(tables)


def delta_table(directory):
    from deltalake import DeltaTable
    import pyarrow as pa

    table = DeltaTable(directory)
    return pa.table(table.to_pyarrow_dataset().to_table())


def value(v):
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return int(round(v.timestamp() * 1000))
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


def write_parquet(source, target, rows):
    import pyarrow.json
    import pyarrow.parquet as pq

    pq.write_table(pyarrow.json.read_json(source), target, row_group_size=int(rows))


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "write-parquet":
        return write_parquet(*sys.argv[2:])
    if len(sys.argv) != 3 or sys.argv[1] not in ("parquet", "delta"):
        sys.exit(__doc__)
    kind, directory = sys.argv[1], sys.argv[2]
    table = parquet_table(directory) if kind == "parquet" else delta_table(directory)
    out = sys.stdout
    fields = [[f.name, str(f.type), f.nullable] for f in table.schema]
    out.write(json.dumps(fields) + "\n")
    for row in table.to_pylist():
        out.write(json.dumps({k: value(v) for k, v in row.items()}) + "\n")


if __name__ == "__main__":
    main()
