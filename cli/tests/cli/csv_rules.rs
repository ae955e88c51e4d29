//! How `tideflow run` reads CSV, as Spark does by default, in input files and `--join-static`
//! tables: cells are not trimmed (a number with surrounding spaces is read as Spark's schema
//! inference reads it: a float, as Java's `Double.parseDouble` does), a column the query reads
//! that appears twice in the header is an error naming the file and the column, and a quote
//! left open at the end of the file is a bad record naming the file and line. Also: a `table.F`
//! aggregate without `--join-static` is refused.

use crate::support::{fails, query_args, tideflow, write};

/// Runs `args`, expects success, returns standard output.
fn output(args: &[&str]) -> String {
    let out = tideflow(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs a query joined with the CSV table `table` (written to `dir/table.csv`, joined on `id`),
/// expects it to fail, and returns the error line.
fn table_fails(dir: &std::path::Path, table: &str) -> String {
    let orders = write(dir, "orders.csv", "ts,k\n1000,1\n");
    let table = write(dir, "table.csv", table);
    let mut args = query_args(
        &orders,
        &["--window", "tumbling:10s", "--agg", "sum:table.credit"],
    );
    args.extend(["--join-static", &table, "--join-key", "id"]);
    fails(&args, 2)
}

#[test]
fn csv_cells_are_not_trimmed_and_spaced_numbers_read_as_floats() {
    let dir = tempfile::tempdir().unwrap();
    // " a" and "a" are two keys (Spark keeps the spaces); " 2 " is the float 2.0, "3" the
    // integer 3; the header name " v" is not "v".
    let input = write(
        dir.path(),
        "spaces.csv",
        "ts,k,v, v\n1000,a,3,x\n2000, a, 2 ,y\n3000,a,\t1.5\t,z\n",
    );
    let out = output(&query_args(
        &input,
        &["--window", "tumbling:10s", "--agg", "sum:v"],
    ));
    assert_eq!(
        out,
        "{\"key\":\" a\",\"window_start\":0,\"window_end\":10000,\"sum_v\":2.0}\n\
         {\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"sum_v\":4.5}\n"
    );
    // A cell of spaces only is not a number (nor null): a bad record.
    let blank = write(dir.path(), "blank.csv", "ts,k,v\n1000,a, \n");
    let line = fails(
        &query_args(&blank, &["--window", "tumbling:10s", "--agg", "sum:v"]),
        2,
    );
    assert!(
        line.contains("blank.csv:2:") && line.contains("field 'v' must be a number"),
        "{line}"
    );
}

#[test]
fn a_duplicate_header_column_the_query_reads_is_an_error_naming_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "dup.csv", "ts,k,v,v\n1000,a,1,2\n");
    let line = fails(
        &query_args(&input, &["--window", "tumbling:10s", "--agg", "sum:v"]),
        2,
    );
    assert!(
        line.contains("dup.csv:1:") && line.contains("column 'v' (--agg) appears 2 times"),
        "{line}"
    );
    // A duplicate the query does not read is harmless (Spark renames it).
    let out = output(&query_args(
        &input,
        &["--window", "tumbling:10s", "--agg", "count"],
    ));
    assert_eq!(
        out,
        "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":1}\n"
    );
    // In a --join-static table too.
    let line = table_fails(dir.path(), "id,credit,id\n1,5,1\n");
    assert!(
        line.contains("table.csv:1:") && line.contains("column 'id' (--join-key) appears 2 times"),
        "{line}"
    );
}

#[test]
fn an_unterminated_quote_at_the_end_of_a_csv_file_is_a_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "open.csv", "ts,k,v\n1000,a,1\n2000,b,\"2\n");
    let query = ["--window", "tumbling:10s", "--agg", "count"];
    let line = fails(&query_args(&input, &query), 2);
    assert!(
        line.contains("open.csv:3:") && line.contains("quote"),
        "{line}"
    );
    // Under --on-error skip it is dropped and counted, like any bad record.
    let mut args = query_args(&input, &query);
    args.extend(["--on-error", "skip"]);
    let out = tideflow(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"key\":\"a\",\"window_start\":0,\"window_end\":10000,\"count\":1}\n"
    );
    assert!(stderr.contains("1 bad records skipped"), "{stderr}");
    // A closed quote at the end of the file, with or without a final newline, is fine.
    for tail in ["2000,\"b\n\",2", "2000,\"b\n\",2\n"] {
        let closed = write(
            dir.path(),
            "closed.csv",
            &format!("ts,k,v\n1000,a,1\n{tail}"),
        );
        let out = output(&query_args(&closed, &query));
        assert_eq!(out.lines().count(), 2, "{tail:?}: {out}");
    }
    // In a --join-static table it stops the job, naming the table and line.
    let line = table_fails(dir.path(), "id,credit\n1,5\n2,\"6\n");
    assert!(
        line.contains("table.csv:3:") && line.contains("quote"),
        "{line}"
    );
}

#[test]
fn a_table_column_aggregate_without_join_static_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "in.jsonl", "{\"ts\":1000,\"k\":\"a\"}\n");
    for agg in ["sum:table.credit", "count_distinct:table.segment"] {
        let line = fails(
            &query_args(&input, &["--window", "tumbling:10s", "--agg", agg]),
            2,
        );
        assert!(
            line.contains("--agg") && line.contains("--join-static"),
            "{agg}: {line}"
        );
    }
}
