//! `tideflow sql`: a script of SQL statements (Flink's table DDL, Spark's and Flink's window
//! functions) planned onto the [`Plan`] that `tideflow run` executes and `explain` prints.
//!
//! `CREATE TABLE` declares the tables (`catalog`), `SET` the run options, and one query (a
//! bare `SELECT`, `INSERT INTO sink SELECT ...` or `EXPLAIN` of either) is planned (`query`):
//! what `run`'s flags can say becomes those flags, the rest (WHERE, computed keys, HAVING, the
//! SELECT list) the plan's stages (`stages`), over expressions compiled and type-checked by
//! `compile` and evaluated by `expr`. sqlparser parses; nothing of DataFusion is used.

mod catalog;
mod compile;
mod error;
mod expr;
mod join;
mod projection;
mod query;
mod stages;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use sqlparser::ast::{self, Spanned};
use tideflow::Error;

use crate::run::{explain::print_plan, run_plan, Plan};
use catalog::Table;
use error::{at, in_span};
use query::Target;

/// Arguments of `tideflow sql`.
#[derive(Debug, Args)]
pub(crate) struct SqlArgs {
    /// The statements, separated by `;`: CREATE TABLE for sources and sinks, SET 'key' =
    /// 'value' for run options, then one SELECT (rows to standard output as JSON lines),
    /// INSERT INTO sink SELECT ..., or EXPLAIN of either.
    #[arg(
        short = 'e',
        long = "execute",
        value_name = "STATEMENTS",
        required_unless_present = "file",
        allow_hyphen_values = true,
        conflicts_with = "file"
    )]
    execute: Option<String>,
    /// A file of statements (instead of -e).
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    #[command(flatten)]
    ui: crate::ui::UiArgs,
}

/// The `SET` keys and the `tideflow run` flag each sets.
const SETTINGS: [(&str, &str); 19] = [
    ("allowed-lateness", "--allowed-lateness"),
    ("idle-timeout", "--idle-timeout"),
    ("table.exec.source.idle-timeout", "--idle-timeout"),
    ("on-error", "--on-error"),
    ("checkpoint-dir", "--checkpoint-dir"),
    ("snapshot-interval", "--snapshot-interval"),
    ("execution.checkpointing.interval", "--snapshot-interval"),
    ("keep-snapshots", "--keep-snapshots"),
    ("trigger", "--trigger"),
    ("output-mode", "--mode"),
    ("complete-interval", "--complete-interval"),
    ("late-output", "--late-output"),
    ("workers", "--workers"),
    ("max-record-bytes", "--max-record-bytes"),
    ("split-size", "--split-size"),
    ("heartbeat", "--heartbeat"),
    ("max-future-skew", "--max-future-skew"),
    ("progress", "--progress"),
    ("progress-interval", "--progress-interval"),
];

/// What a script asks for.
pub(crate) enum Job {
    /// Run the query.
    Run(Plan),
    /// Print the query's plan.
    Explain(Plan),
}

/// Reads `SET 'key' = 'value'` as the run flag and value it sets.
fn setting(set: &ast::Set, start: sqlparser::tokenizer::Location) -> Result<[String; 2], Error> {
    let supported = || {
        let keys: Vec<String> = SETTINGS.iter().map(|(key, _)| format!("'{key}'")).collect();
        format!("supported keys: {}", keys.join(", "))
    };
    let ast::Set::SingleAssignment {
        variable, values, ..
    } = set
    else {
        return Err(at(
            start,
            format!("expected SET 'key' = 'value'; {}", supported()),
        ));
    };
    let key: Vec<String> = variable
        .0
        .iter()
        .map(|part| match part {
            ast::ObjectNamePart::Identifier(id) => id.value.clone(),
            other => other.to_string(),
        })
        .collect();
    let key = key.join(".");
    let Some((_, flag)) = SETTINGS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&key))
    else {
        return Err(at(
            start,
            format!("SET '{key}' is not supported; {}", supported()),
        ));
    };
    let value = match values.as_slice() {
        [ast::Expr::Value(value)] => match &value.value {
            ast::Value::SingleQuotedString(text) | ast::Value::Number(text, _) => text.clone(),
            other => other.to_string(),
        },
        [ast::Expr::Identifier(id)] => id.value.clone(),
        _ => {
            return Err(at(
                start,
                format!("SET '{key}': expected one value, SET '{key}' = 'value'"),
            ))
        }
    };
    Ok([flag.to_string(), value])
}

/// Plans the script: its tables and settings, and its one query.
pub(crate) fn plan_script(script: &str) -> Result<Job, Error> {
    let statements = catalog::statements(script)?;
    let mut tables: Vec<Table> = Vec::new();
    let mut settings: Vec<String> = Vec::new();
    let mut query = None;
    for statement in &statements {
        let parsed = statement.parse()?;
        if statement.watermark.is_some() && !matches!(parsed, ast::Statement::CreateTable(_)) {
            return Err(at(statement.start, "WATERMARK FOR goes in CREATE TABLE"));
        }
        match &parsed {
            ast::Statement::CreateTable(create) => {
                let table = catalog::table(create, statement.watermark.clone())?;
                if tables
                    .iter()
                    .any(|t| t.name.eq_ignore_ascii_case(&table.name))
                {
                    return Err(at(
                        statement.start,
                        format!("table {} is created twice", table.name),
                    ));
                }
                tables.push(table);
            }
            ast::Statement::Set(set) => settings.extend(setting(set, statement.start)?),
            ast::Statement::Query(_)
            | ast::Statement::Insert(_)
            | ast::Statement::Explain { .. } => {
                if query.is_some() {
                    return Err(at(
                        statement.start,
                        "one query per script: run each query with its own tideflow sql",
                    ));
                }
                query = Some((parsed, statement));
            }
            _ => return Err(at(
                statement.start,
                "only CREATE TABLE, SET, SELECT, INSERT INTO ... SELECT and EXPLAIN are supported",
            )),
        }
    }
    let Some((parsed, statement)) = query else {
        return Err(Error::Config("sql: the script has no query: end it with SELECT ..., INSERT INTO sink SELECT ... or EXPLAIN SELECT ...".into()));
    };
    let (explain, parsed) = match parsed {
        ast::Statement::Explain {
            statement: inner,
            analyze: false,
            ..
        } => (true, *inner),
        ast::Statement::Explain { .. } => {
            return Err(at(
                statement.start,
                "EXPLAIN ANALYZE is not supported; EXPLAIN prints the plan without running it",
            ))
        }
        other => (false, other),
    };
    let partition = statement.partition.as_ref();
    let plan = match &parsed {
        ast::Statement::Query(q) => {
            query::plan(q, &tables, partition, Target { table: None }, &settings)?
        }
        ast::Statement::Insert(insert) => {
            let ast::TableObject::TableName(name) = &insert.table else {
                return Err(at(statement.start, "INSERT INTO takes a table name"));
            };
            let sink = tables.iter().find(|t| t.name.eq_ignore_ascii_case(&name.to_string()))
                .ok_or_else(|| in_span(name.span(), format!("unknown table {name}; CREATE TABLE it with a 'file', 'print' or 'kafka' connector first")))?;
            let Some(source) = &insert.source else {
                return Err(at(statement.start, "INSERT INTO takes a SELECT"));
            };
            if !insert.columns.is_empty() {
                return Err(at(statement.start, "INSERT INTO t (columns) is not supported: the SELECT's columns fill the table's in order"));
            }
            query::plan(
                source,
                &tables,
                partition,
                Target { table: Some(sink) },
                &settings,
            )?
        }
        _ => {
            return Err(at(
                statement.start,
                "EXPLAIN takes a SELECT or INSERT INTO ... SELECT",
            ))
        }
    };
    Ok(match explain {
        true => Job::Explain(plan),
        false => Job::Run(plan),
    })
}

/// Runs `tideflow sql`.
pub(crate) fn sql(args: SqlArgs) -> Result<ExitCode, Error> {
    let script = match (&args.execute, &args.file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("--file: cannot read {}", path.display()), e))?,
        (None, None) => {
            return Err(Error::Config(
                "-e: pass the statements with -e or --file".into(),
            ))
        }
    };
    match plan_script(&script)? {
        Job::Run(plan) => run_plan(plan, args.ui),
        Job::Explain(plan) => print_plan(&plan).map(|()| ExitCode::SUCCESS),
    }
}
