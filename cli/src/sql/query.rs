//! A query planned onto `tideflow run`'s [`Plan`]: the source table and window become the
//! flags `run` takes (`--input`, `--time-field`, `--watermark-delay`, `--window`, `--agg`,
//! `--key-field`, `--mode`, `--output`), so a query `run`'s flags can say compiles into the very
//! plan those flags give; what they cannot say (WHERE, computed or several GROUP BY keys,
//! aggregates over expressions, HAVING, the SELECT list) becomes the plan's [`SqlStages`].

use std::sync::Arc;
use std::time::Duration;

use sqlparser::ast::{self, GroupByExpr, SelectItem, SetExpr, Spanned, TableFactor};
use sqlparser::tokenizer::Span;
use tideflow::Error;

use super::catalog::{interval, Connector, SqlType, Table};
use super::compile::{as_column, call_args, Compiler, GroupKey, Scope, WindowNames};
use super::error::in_span;
use super::projection::{members, names_aggregate, Projection};
use super::stages::{Before, KeyShape, Output, SqlStages, Texts};
use crate::record::AggKind;
use crate::run::stages::plan_of_flags;
use crate::run::Plan;

/// Where a query's rows go: standard output (a bare SELECT) or a sink table (INSERT INTO).
pub(super) struct Target<'a> {
    pub(super) table: Option<&'a Table>,
}

/// A window of a query.
#[derive(Clone, Copy)]
enum Window {
    Tumbling(Duration),
    Sliding(Duration, Duration),
    Session(Duration),
}

fn ms(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

impl Window {
    fn flag(self) -> String {
        match self {
            Window::Tumbling(size) => format!("tumbling:{}", ms(size)),
            Window::Sliding(size, slide) => format!("sliding:{},{}", ms(size), ms(slide)),
            Window::Session(gap) => format!("session:{}", ms(gap)),
        }
    }
}

/// The plan of the `tideflow run` flags a query is planned as; a flag's error says it is one
/// (with the flags, so that the user sees what the query became).
pub(super) fn plan_of(flags: &[String]) -> Result<Plan, Error> {
    plan_of_flags(flags).map_err(|error| match error {
        Error::Config(message) => Error::Config(format!(
            "sql: the query as tideflow run flags ({}): {message}",
            flags.join(" ")
        )),
        other => other,
    })
}

/// The name of the table a FROM item names.
fn table_name(name: &ast::ObjectName) -> String {
    name.to_string()
}

/// Finds table `name` among `tables`.
fn find<'t>(tables: &'t [Table], name: &str, span: Span) -> Result<&'t Table, Error> {
    tables
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| {
            let known: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
            in_span(
                span,
                format!(
                    "unknown table {name}; CREATE TABLE it first (tables: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })
}

/// Refuses what a streaming query here cannot do, naming it.
fn refuse_unsupported(query: &ast::Query, select: &ast::Select) -> Result<(), Error> {
    let span = select.select_token.0.span;
    let refused = [
        (query.with.is_some(), "WITH (common table expressions)"),
        (
            query.order_by.is_some(),
            "ORDER BY (rows leave as windows close, in window-end order)",
        ),
        (
            query.limit_clause.is_some() || query.fetch.is_some(),
            "LIMIT",
        ),
        (select.distinct.is_some(), "SELECT DISTINCT (use GROUP BY)"),
        (select.top.is_some(), "TOP"),
        (!select.lateral_views.is_empty(), "LATERAL VIEW"),
        (select.qualify.is_some(), "QUALIFY"),
        (
            !select.named_window.is_empty(),
            "WINDOW clauses (OVER windows)",
        ),
        (
            !select.sort_by.is_empty()
                || !select.cluster_by.is_empty()
                || !select.distribute_by.is_empty(),
            "SORT/CLUSTER/DISTRIBUTE BY",
        ),
    ];
    match refused.iter().find(|(given, _)| *given) {
        Some((_, what)) => Err(in_span(span, format!("{what} is not supported"))),
        None => Ok(()),
    }
}

/// The window of a window function `name` (Flink's in upper case, Spark's in lower case) with
/// the `lengths` it takes.
fn window_of(name: &str, lengths: &[&ast::Expr], span: Span, usage: &str) -> Result<Window, Error> {
    let lengths: Vec<Duration> = lengths
        .iter()
        .map(|e| interval(e, e.span()))
        .collect::<Result<_, _>>()?;
    Ok(match (name, lengths.as_slice()) {
        ("TUMBLE" | "window", [size]) => Window::Tumbling(*size),
        ("HOP", [slide, size]) | ("window", [size, slide]) => Window::Sliding(*size, *slide),
        ("SESSION" | "session_window", [gap]) => Window::Session(*gap),
        ("CUMULATE", _) => {
            return Err(in_span(
                span,
                "CUMULATE windows are not supported; use TUMBLE, HOP or SESSION",
            ))
        }
        _ => {
            return Err(in_span(
                span,
                format!("expected {usage} (a window start offset is not supported)"),
            ))
        }
    })
}

/// The window and source table of a Flink window function in FROM:
/// `TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size))`, `HOP(..., slide, size)`,
/// `SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), gap)`.
fn flink_window<'t>(
    expr: &ast::Expr,
    tables: &'t [Table],
) -> Result<(&'t Table, String, Window), Error> {
    let span = expr.span();
    let usage = "FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND)), HOP(TABLE t, DESCRIPTOR(ts), slide, size) or SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), gap)";
    let ast::Expr::Function(f) = expr else {
        return Err(in_span(span, format!("expected {usage}")));
    };
    let name = f.name.to_string().to_ascii_uppercase();
    let args = call_args(f)?;
    let args: Vec<&ast::Expr> = args.into_iter().flatten().collect();
    let (table, descriptor, lengths) = match args.as_slice() {
        [table, descriptor, lengths @ ..] => (table, descriptor, lengths),
        _ => return Err(in_span(span, format!("expected {usage}"))),
    };
    let Some((table_parts, table_span)) = as_column(table) else {
        return Err(in_span(span, format!("expected {usage}")));
    };
    let table = find(tables, &table_parts.join("."), table_span)?;
    let time = match descriptor {
        ast::Expr::Function(d) if d.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => {
            match call_args(d)?.as_slice() {
                [Some(column)] => as_column(column).map(|(parts, _)| parts.join(".")),
                _ => None,
            }
        }
        _ => None,
    };
    let time = time.ok_or_else(|| {
        in_span(
            descriptor.span(),
            format!("expected DESCRIPTOR(ts): {usage}"),
        )
    })?;
    let window = window_of(&name, lengths, span, usage)?;
    Ok((table, time, window))
}

/// A Spark window function in GROUP BY: `window(ts, '10 seconds'[, '5 seconds'])` or
/// `session_window(ts, '5 seconds')`; `None` for another expression.
fn spark_window(expr: &ast::Expr) -> Result<Option<(String, Window)>, Error> {
    let ast::Expr::Function(f) = expr else {
        return Ok(None);
    };
    let name = f.name.to_string().to_ascii_lowercase();
    if name != "window" && name != "session_window" {
        return Ok(None);
    }
    let span = expr.span();
    let usage = "window(ts, '10 seconds'[, '5 seconds']) or session_window(ts, '5 seconds')";
    let args = call_args(f)?;
    let args: Vec<&ast::Expr> = args.into_iter().flatten().collect();
    let Some((time, lengths)) = args.split_first() else {
        return Err(in_span(span, format!("expected {usage}")));
    };
    let time = as_column(time)
        .map(|(parts, _)| parts.join("."))
        .ok_or_else(|| {
            in_span(
                span,
                format!("expected {usage}: the first argument is the event-time column"),
            )
        })?;
    let window = window_of(&name, lengths, span, usage)?;
    Ok(Some((time, window)))
}

/// The output name of a SELECT item without an alias, as Spark names it: a column's name,
/// `start`/`end` for `window.start`/`window.end`, `count(1)` for COUNT(*), else its SQL text
/// with functions in lower case.
fn default_name(expr: &ast::Expr) -> String {
    if let Some((parts, _)) = as_column(expr) {
        return parts.last().cloned().unwrap_or_default();
    }
    if let ast::Expr::Function(f) = expr {
        let name = f.name.to_string().to_ascii_lowercase();
        let text = expr.to_string();
        if name == "count" && text.ends_with("(*)") {
            return "count(1)".into();
        }
        if let Some(open) = text.find('(') {
            return format!("{name}{}", &text[open..]);
        }
    }
    expr.to_string()
}

/// The run flags of a source table: where it is read from, its format and event time.
fn source_flags(table: &Table, span: Span, windowed: bool) -> Result<Vec<String>, Error> {
    let Some(watermark) = &table.watermark else {
        let what = if windowed {
            "a window"
        } else {
            "a streaming aggregation"
        };
        return Err(in_span(span, format!(
            "{what} over table {} needs its event time and watermark: add WATERMARK FOR ts AS ts - INTERVAL '5' SECOND to its CREATE TABLE (ts a BIGINT of ms since the epoch or a TIMESTAMP(3) column)",
            table.name
        )));
    };
    let input = match &table.connector {
        Connector::File(path) => path.clone(),
        Connector::Stdin => "-".into(),
        Connector::Tcp(address) => format!("tcp://{address}"),
        Connector::Rate(spec) | Connector::Kafka(spec) => spec.clone(),
        Connector::Stdout => {
            return Err(in_span(
                span,
                format!("table {} is a 'print' sink; it cannot be read", table.name),
            ))
        }
    };
    let mut flags = vec!["--input".to_string(), input];
    if let Some(format) = &table.format {
        flags.extend(["--format".to_string(), format.clone()]);
    }
    flags.extend([
        "--time-field".to_string(),
        watermark.column.clone(),
        "--watermark-delay".to_string(),
        ms(watermark.delay),
    ]);
    Ok(flags)
}

/// The run flags of where the rows go.
fn target_flags(target: &Target<'_>) -> Result<Vec<String>, Error> {
    let Some(table) = target.table else {
        return Ok(Vec::new());
    };
    let output = match &table.connector {
        Connector::File(path) => path.clone(),
        Connector::Stdout => return Ok(Vec::new()),
        Connector::Kafka(address) => address.clone(),
        _ => {
            return Err(in_span(
                table.span,
                format!(
                    "table {}: a sink is a 'file', 'print' or 'kafka' table",
                    table.name
                ),
            ))
        }
    };
    if table.format.as_deref() == Some("csv") {
        return Err(in_span(
            table.span,
            format!(
                "table {}: sinks write JSON lines ('format' = 'jsonl')",
                table.name
            ),
        ));
    }
    let mut flags = vec!["--output".to_string(), output];
    if !output_is_kafka(table) {
        flags.extend(["--output-format".to_string(), "jsonl".to_string()]);
    }
    Ok(flags)
}

fn output_is_kafka(table: &Table) -> bool {
    matches!(table.connector, Connector::Kafka(_))
}

/// Plans `query` over `tables`, writing to `target`, with the `settings` (run flags of SET
/// statements); `partition` is a Flink SESSION's PARTITION BY.
pub(super) fn plan(
    query: &ast::Query,
    tables: &[Table],
    partition: Option<&(Vec<String>, Span)>,
    target: Target<'_>,
    settings: &[String],
) -> Result<Plan, Error> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err(in_span(
            query.body.span(),
            "only SELECT queries are supported (no UNION, VALUES, ...)",
        ));
    };
    refuse_unsupported(query, select)?;
    let select_span = select.select_token.0.span;
    let [from] = select.from.as_slice() else {
        return Err(in_span(
            select_span,
            "a query reads exactly one table (FROM t)",
        ));
    };
    let (table, alias, mut window, flink) = match &from.relation {
        TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } => (
            find(tables, &table_name(name), name.span())?,
            alias.as_ref().map(|a| a.name.value.clone()),
            None,
            false,
        ),
        TableFactor::TableFunction { expr, alias } => {
            let (table, time, window) = flink_window(expr, tables)?;
            (
                table,
                alias.as_ref().map(|a| a.name.value.clone()),
                Some((time, window, expr.span())),
                true,
            )
        }
        other => {
            return Err(in_span(
                other.span(),
                "FROM takes a table or a window function (TABLE(TUMBLE(...)))",
            ))
        }
    };
    if partition.is_some() && !flink {
        return Err(in_span(
            partition.map_or(select_span, |p| p.1),
            "PARTITION BY goes in SESSION(TABLE t PARTITION BY k, ...)",
        ));
    }
    let group_exprs: &[ast::Expr] = match &select.group_by {
        GroupByExpr::Expressions(exprs, modifiers) if modifiers.is_empty() => exprs,
        _ => {
            return Err(in_span(
                select_span,
                "GROUP BY ALL, ROLLUP, CUBE and GROUPING SETS are not supported",
            ))
        }
    };
    if table.is_static {
        return Err(in_span(
            select_span,
            format!(
                "table {} is static ('mode' = 'static'): it is joined to a stream, not read as one",
                table.name
            ),
        ));
    }
    let qualifiers: Vec<String> = std::iter::once(table.name.clone()).chain(alias).collect();
    let lookup = match from.joins.as_slice() {
        [] => None,
        [join] => Some(super::join::lookup(join, tables, table, &qualifiers)?),
        [_, join, ..] => return Err(in_span(join.relation.span(), "one JOIN per query")),
    };
    let mut compiler = Compiler {
        table,
        lookup: lookup.as_ref(),
        qualifiers,
        reads: Vec::new(),
        keys: Vec::new(),
        aggs: Vec::new(),
        window: window.as_ref().map(|_| WindowNames::Flink),
    };
    let mut flink_bounds = 0;
    for expr in group_exprs {
        if let Some((time, spark)) = spark_window(expr)? {
            if window.is_some() {
                return Err(in_span(expr.span(), "one window per query"));
            }
            compiler.window = Some(match spark {
                Window::Session(_) => WindowNames::SparkSession,
                _ => WindowNames::Spark,
            });
            window = Some((time, spark, expr.span()));
            continue;
        }
        if flink
            && as_column(expr).is_some_and(|(parts, _)| {
                parts.len() == 1
                    && ["window_start", "window_end"]
                        .contains(&parts[0].to_ascii_lowercase().as_str())
            })
        {
            flink_bounds += 1;
            continue;
        }
        let (compiled, ty) = compiler.compile(expr, Scope::Row("GROUP BY"))?;
        let column = as_column(expr)
            .and_then(|(parts, span)| compiler.column(&parts, span).ok())
            .map(|(c, _)| c);
        compiler.keys.push(GroupKey {
            text: expr.to_string(),
            expr: compiled,
            ty,
            column,
        });
    }
    if flink && flink_bounds != 2 {
        return Err(in_span(
            select_span,
            "with a window function in FROM, GROUP BY window_start, window_end (and the keys)",
        ));
    }
    let windowed = window.is_some();
    if let Some((time, _, span)) = &window {
        let watermark = table.watermark.as_ref().map(|w| w.column.as_str());
        if table.watermark.is_some()
            && !watermark
                .is_some_and(|w| w.eq_ignore_ascii_case(time.rsplit('.').next().unwrap_or(time)))
        {
            return Err(in_span(*span, format!("the window is over {time}, but table {}'s event time is {} (its WATERMARK FOR column)", table.name, watermark.unwrap_or("-"))));
        }
    }
    if let (Some((_, Window::Session(_), span)), true) = (&window, flink) {
        let keys: Vec<String> = compiler
            .keys
            .iter()
            .map(|k| {
                k.column
                    .clone()
                    .unwrap_or_else(|| k.text.clone())
                    .to_ascii_lowercase()
            })
            .collect();
        let mut partition_keys: Vec<String> = partition
            .map(|p| p.0.iter().map(|c| c.to_ascii_lowercase()).collect())
            .unwrap_or_default();
        let mut sorted = keys.clone();
        sorted.sort();
        partition_keys.sort();
        if sorted != partition_keys {
            return Err(in_span(*span, format!("SESSION: tideflow's sessions are per group key: partition by the GROUP BY keys, SESSION(TABLE t PARTITION BY {}, ...) (without PARTITION BY, Flink's sessions span all keys)", if keys.is_empty() { "k".to_string() } else { keys.join(", ") })));
        }
    }
    let source = source_flags(table, select_span, windowed)?;
    // A query without GROUP BY, window or aggregate projects each row (stateless).
    let stateless = group_exprs.is_empty()
        && !windowed
        && select.having.is_none()
        && !select
            .projection
            .iter()
            .any(|item| names_aggregate(&item.to_string()));
    let scope = match stateless {
        true => Scope::Row("the SELECT list of a query without GROUP BY"),
        false => Scope::Group,
    };
    // The SELECT list and HAVING, over the groups (over the rows if stateless).
    let mut outputs = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let mut select_texts = Vec::new();
    let sink_columns = target.table.map(|t| t.columns.clone());
    for (i, item) in select.projection.iter().enumerate() {
        let (expr, alias) = match item {
            SelectItem::UnnamedExpr(expr) => (expr, None),
            SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value.clone())),
            _ => {
                return Err(in_span(
                    select_span,
                    "SELECT * is not supported: name the columns",
                ))
            }
        };
        let (compiled, ty) = compiler.compile(expr, scope)?;
        let name = match &sink_columns {
            Some(columns) => columns.get(i).map(|(c, _)| c.clone()).unwrap_or_default(),
            None => alias.unwrap_or_else(|| default_name(expr)),
        };
        if names.contains(&name) {
            return Err(in_span(
                expr.span(),
                format!("two output columns are named {name}; give one an alias (AS name)"),
            ));
        }
        select_texts.push(match item {
            SelectItem::ExprWithAlias { alias, .. } => format!("{expr} AS {}", alias.value),
            _ => expr.to_string(),
        });
        names.push(name);
        outputs.push((compiled, ty));
    }
    if let Some(columns) = &sink_columns {
        if columns.len() != outputs.len() {
            return Err(in_span(
                select_span,
                format!(
                    "INSERT INTO {}: the SELECT has {} columns, the table {}",
                    target.table.map_or("", |t| t.name.as_str()),
                    outputs.len(),
                    columns.len()
                ),
            ));
        }
    }
    let having = match &select.having {
        None => None,
        Some(expr) => {
            let (compiled, ty) = compiler.compile(expr, Scope::Group)?;
            if !matches!(ty, SqlType::Bool | SqlType::Null) {
                return Err(in_span(
                    expr.span(),
                    format!("type mismatch: HAVING takes a BOOLEAN, not {}", ty.name()),
                ));
            }
            Some((compiled, expr.to_string()))
        }
    };
    let filter = match &select.selection {
        None => None,
        Some(expr) => {
            let (compiled, ty) = compiler.compile(expr, Scope::Row("WHERE"))?;
            if !matches!(ty, SqlType::Bool | SqlType::Null) {
                return Err(in_span(
                    expr.span(),
                    format!("type mismatch: WHERE takes a BOOLEAN, not {}", ty.name()),
                ));
            }
            Some((compiled, expr.to_string()))
        }
    };
    if let (true, Some(lookup)) = (stateless, &lookup) {
        return Err(in_span(lookup.span, "a JOIN with a static table needs GROUP BY its key column: a join without aggregation is not supported yet"));
    }
    if stateless {
        let mut flags = source;
        flags.extend(target_flags(&target)?);
        let projection = Projection {
            reads: compiler.reads,
            filter,
            outputs,
            names,
            select: select_texts,
        };
        return projection.plan(flags, target.table.is_some_and(output_is_kafka), settings);
    }
    if compiler.aggs.is_empty() {
        // `run` aggregates something: a count nobody selects.
        compiler.aggs.push(super::compile::Aggregate {
            kind: AggKind::Count,
            field: None,
            arg: None,
            plain: true,
        });
    }
    let Compiler {
        reads, keys, aggs, ..
    } = compiler;
    // The stages, if the flags cannot say it all.
    let rewrites = filter.is_some()
        || keys.len() > 1
        || keys.iter().any(|k| k.column.is_none())
        || aggs.iter().any(|a| !a.plain);
    let time_type = table
        .watermark
        .as_ref()
        .and_then(|w| table.column(&w.column))
        .unwrap_or(SqlType::Int);
    let mut expected: Vec<String> = Vec::new();
    if keys.len() == 1 {
        expected.push("key".into());
    }
    if windowed {
        expected.extend(["window_start".into(), "window_end".into()]);
    }
    let agg_columns: Vec<String> = aggs
        .iter()
        .map(|a| {
            crate::record::AggSpec {
                kind: a.kind,
                field: a.field.clone(),
            }
            .column()
        })
        .collect();
    expected.extend(agg_columns);
    let identity = !rewrites
        && having.is_none()
        && keys.len() == 1
        && time_type == SqlType::Int
        && names == expected
        && outputs
            .iter()
            .enumerate()
            .all(|(i, (e, _))| matches!(e, super::expr::Expr::Slot(s) if *s == i));
    let mut flags = source;
    if let Some(lookup) = &lookup {
        let key_is_join = matches!(keys.as_slice(), [key] if key.column.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(&lookup.stream_column)));
        if !key_is_join {
            return Err(in_span(lookup.span, format!("a JOIN with a static table matches the records' GROUP BY key: GROUP BY {} (and the window) only", lookup.stream_column)));
        }
        if rewrites {
            return Err(in_span(lookup.span, "with a JOIN, WHERE, computed GROUP BY keys and aggregates over expressions are not supported yet: aggregate columns"));
        }
        flags.extend(lookup.flags()?);
    }
    let key_field = match (rewrites, keys.first()) {
        (false, Some(key)) => key.column.clone(),
        _ => None,
    };
    if let Some(key) = &key_field {
        flags.extend(["--key-field".to_string(), key.clone()]);
    }
    if let Some((_, window, _)) = &window {
        flags.extend(["--window".to_string(), window.flag()]);
    }
    for agg in &aggs {
        let spec = match &agg.field {
            None => agg.kind.name().to_string(),
            Some(field) => format!("{}:{field}", agg.kind.name()),
        };
        flags.extend(["--agg".to_string(), spec]);
    }
    if !settings.iter().any(|flag| flag == "--mode") {
        let mode = if windowed { "append" } else { "update" };
        flags.extend(["--mode".to_string(), mode.to_string()]);
    }
    flags.extend(target_flags(&target)?);
    flags.extend(settings.iter().cloned());
    let plan = plan_of(&flags)?;
    if identity {
        return Ok(plan);
    }
    // The aggregation's inputs, laid out as the plan lays out its fields.
    let (mut value_fields, mut scalar_fields): (Vec<String>, Vec<String>) =
        (Vec::new(), Vec::new());
    let (mut values, mut scalars, mut inputs) = (Vec::new(), Vec::new(), Vec::new());
    for agg in &aggs {
        let (Some(field), Some((expr, _))) = (&agg.field, &agg.arg) else {
            continue;
        };
        let (fields, exprs) = match agg.kind.reads_scalars() {
            true => (&mut scalar_fields, &mut scalars),
            false => (&mut value_fields, &mut values),
        };
        if !fields.contains(field) {
            fields.push(field.clone());
            exprs.push(expr.clone());
            inputs.push(field.clone());
        }
    }
    let before = rewrites.then(|| Before {
        reads: reads.clone(),
        filter: filter.as_ref().map(|(e, _)| e.clone()),
        keys: keys.iter().map(|k| k.expr.clone()).collect(),
        values,
        scalars,
    });
    let key = match (keys.len(), rewrites) {
        (0, _) => KeyShape::None,
        (1, false) => KeyShape::Field,
        (1, true) => KeyShape::Single,
        _ => KeyShape::Composite,
    };
    let outputs = (outputs.into_iter().zip(members(&names)))
        .map(|((expr, ty), member)| Output { member, expr, ty })
        .collect();
    let stages = SqlStages {
        before,
        key,
        key_types: keys.iter().map(|k| k.ty).collect(),
        windowed,
        stateless: false,
        having: having.as_ref().map(|(e, _)| e.clone()),
        outputs,
        texts: Texts {
            filter: filter.map(|(_, text)| text),
            keys: keys.iter().map(|k| k.text.clone()).collect(),
            inputs,
            having: having.map(|(_, text)| text),
            select: select_texts,
        },
    };
    let reads = rewrites.then(|| reads.into_iter().map(|(name, _)| name).collect());
    plan.with_stages(reads, Arc::new(stages))
}
