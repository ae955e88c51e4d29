//! `JOIN static_table ON stream.k = static_table.k`: planned onto `tideflow run
//! --join-static`, which matches each record's GROUP BY key against the table's key column
//! (inner or left), so the join column must be the query's one GROUP BY column; the
//! aggregates read the table's columns as `run` reads `table.F`.

use sqlparser::ast::{self, BinaryOperator, JoinConstraint, JoinOperator, Spanned, TableFactor};
use tideflow::Error;

use super::catalog::{Connector, Table};
use super::compile::as_column;
use super::error::in_span;

/// A stream-static join of a query.
pub(super) struct Lookup<'t> {
    pub(super) table: &'t Table,
    /// The names the static table goes by (its name and alias).
    pub(super) qualifiers: Vec<String>,
    /// The stream's column matched against the table's.
    pub(super) stream_column: String,
    /// The table's key column.
    pub(super) table_column: String,
    /// A LEFT join (else inner).
    pub(super) left: bool,
    pub(super) span: sqlparser::tokenizer::Span,
}

impl Lookup<'_> {
    /// The run flags of the join.
    pub(super) fn flags(&self) -> Result<Vec<String>, Error> {
        let Connector::File(path) = &self.table.connector else {
            return Err(in_span(self.span, "a static table is a 'file' table"));
        };
        let kind = if self.left { "left" } else { "inner" };
        Ok([
            "--join-static",
            path,
            "--join-key",
            &self.table_column,
            "--join-type",
            kind,
        ]
        .map(String::from)
        .to_vec())
    }
}

fn qualified(parts: &[String], qualifiers: &[String]) -> bool {
    parts.len() == 2 && qualifiers.iter().any(|q| q.eq_ignore_ascii_case(&parts[0]))
}

/// The stream-static join `join` of the stream table (which goes by `stream_qualifiers`).
pub(super) fn lookup<'t>(
    join: &ast::Join,
    tables: &'t [Table],
    stream: &Table,
    stream_qualifiers: &[String],
) -> Result<Lookup<'t>, Error> {
    let span = join.relation.span();
    let refuse = |what: &str| {
        in_span(span, format!("{what}; tideflow sql joins a stream with a static table ('mode' = 'static'): [LEFT] JOIN t ON stream.k = t.k, with k the query's GROUP BY column"))
    };
    let (constraint, left) = match &join.join_operator {
        JoinOperator::Join(c) | JoinOperator::Inner(c) => (c, false),
        JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => (c, true),
        _ => return Err(refuse("this kind of join is not supported")),
    };
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = &join.relation
    else {
        return Err(refuse("a join reads a table"));
    };
    let table = tables
        .iter()
        .find(|t| t.name.eq_ignore_ascii_case(&name.to_string()))
        .ok_or_else(|| {
            in_span(
                name.span(),
                format!("unknown table {name}; CREATE TABLE it first"),
            )
        })?;
    if !table.is_static {
        return Err(refuse(&format!(
            "table {} is a stream: stream-stream joins are not supported yet",
            table.name
        )));
    }
    let qualifiers: Vec<String> = std::iter::once(table.name.clone())
        .chain(alias.as_ref().map(|a| a.name.value.clone()))
        .collect();
    let JoinConstraint::On(ast::Expr::BinaryOp {
        left: a,
        op: BinaryOperator::Eq,
        right: b,
    }) = constraint
    else {
        return Err(refuse("a join is ON one equality"));
    };
    let (Some((a, _)), Some((b, _))) = (as_column(a), as_column(b)) else {
        return Err(refuse("a join is ON one equality of two columns"));
    };
    let (stream_parts, table_parts) = match (qualified(&a, &qualifiers), qualified(&b, &qualifiers)) {
        (false, true) => (a, b),
        (true, false) => (b, a),
        _ => return Err(refuse("the ON equality compares a column of the stream with one of the static table, both qualified")),
    };
    let stream_column = stream_parts.last().cloned().unwrap_or_default();
    let stream_named = stream_parts.len() == 1 || qualified(&stream_parts, stream_qualifiers);
    if !stream_named || stream.column(&stream_column).is_none() {
        return Err(refuse(&format!(
            "{} is not a column of {}",
            stream_parts.join("."),
            stream.name
        )));
    }
    let table_column = table_parts[1].clone();
    if table.column(&table_column).is_none() {
        return Err(refuse(&format!(
            "{} is not a column of {}",
            table_parts.join("."),
            table.name
        )));
    }
    Ok(Lookup {
        table,
        qualifiers,
        stream_column,
        table_column,
        left,
        span,
    })
}
