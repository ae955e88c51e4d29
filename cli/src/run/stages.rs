//! What a query adds around the aggregation of a [`Plan`](super::Plan): a row stage before it
//! (a filter, computed group keys and aggregate inputs), a filter of its result rows and the
//! columns each result row is written with. `tideflow sql` builds them from a query's WHERE,
//! GROUP BY, HAVING and SELECT list (`crate::sql`); `tideflow run` has none, and writes its
//! fixed row shape through [`RowEncoder`].

use std::sync::Arc;

use crate::output::{Extra, OutputRow, RowEncoder, RowView};
use crate::record::Row;
use tideflow::sink::Encoder;
use tideflow::Error;

/// The stages a query adds around the aggregation (see the module).
pub(crate) trait Stages: Send + Sync + 'static {
    /// Whether [`before`](Self::before) changes rows: without it the decoded rows go to the
    /// aggregation as they are.
    fn rewrites_rows(&self) -> bool;
    /// The row the aggregation reads, made from the row as decoded; `None` drops it.
    fn before(&self, row: Row) -> Option<Row>;
    /// Whether the query aggregates nothing: the rows [`before`](Self::before) makes are
    /// written by [`write_row`](Self::write_row), as they come.
    fn stateless(&self) -> bool;
    /// Appends a row of a stateless query as one JSON line.
    fn write_row(&self, row: &Row, out: &mut Vec<u8>);
    /// The group key [`before`](Self::before) computes, as `explain` names it; `None` when
    /// the key is the schema's key field, or there is none.
    fn key(&self) -> Option<String>;
    /// Whether a result row is written.
    fn keep(&self, row: RowView<'_>) -> bool;
    /// Appends a result row, with its output mode's `extra` columns, as one JSON line.
    fn write(&self, row: RowView<'_>, extra: Extra, out: &mut Vec<u8>);
    /// The operators of [`before`](Self::before) for `explain`, before the key exchange.
    fn explain_before(&self) -> Vec<(&'static str, String)>;
    /// The operators of [`keep`](Self::keep) and [`write`](Self::write) for `explain`, before
    /// the sink.
    fn explain_after(&self) -> Vec<(&'static str, String)>;
    /// The stages in one canonical text, for the job's fingerprint: a resume with a changed
    /// query is refused.
    fn fingerprint(&self) -> String;
}

/// How a plan's result rows are written: `run`'s fixed row shape, or a query's columns.
pub(crate) enum PlanEncoder {
    /// The row shape of `tideflow run`.
    Rows(RowEncoder),
    /// The columns of a query's SELECT list.
    Query(Arc<dyn Stages>),
}

impl<R: OutputRow> Encoder<R> for PlanEncoder {
    fn encode(&mut self, row: &R, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            PlanEncoder::Rows(encoder) => encoder.encode(row, out),
            PlanEncoder::Query(stages) => {
                let (view, extra) = row.parts();
                stages.write(view, extra, out);
                Ok(())
            }
        }
    }

    fn begin_file(&mut self) {
        if let PlanEncoder::Rows(encoder) = self {
            Encoder::<R>::begin_file(encoder);
        }
    }

    fn continue_file(&mut self) {
        if let PlanEncoder::Rows(encoder) = self {
            Encoder::<R>::continue_file(encoder);
        }
    }
}

/// Encodes the rows of a stateless query as its JSON lines.
pub(crate) struct RowLines(pub(crate) Arc<dyn Stages>);

impl Encoder<Row> for RowLines {
    fn encode(&mut self, row: &Row, out: &mut Vec<u8>) -> Result<(), Error> {
        self.0.write_row(row, out);
        Ok(())
    }
}

/// The flags of `tideflow run`, for a query planned as them (`tideflow sql`).
#[derive(clap::Parser)]
#[command(name = "tideflow run")]
struct RunFlags {
    #[command(flatten)]
    args: super::RunArgs,
}

/// The [`Plan`](super::Plan) of `tideflow run` with `flags` (without the program name).
pub(crate) fn plan_of_flags(flags: &[String]) -> Result<super::Plan, Error> {
    use clap::Parser as _;
    let argv = std::iter::once("tideflow run".to_string()).chain(flags.iter().cloned());
    let parsed = RunFlags::try_parse_from(argv).map_err(|e| {
        let text = e.to_string();
        let line = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        Error::Config(line.to_string())
    })?;
    super::Plan::new(parsed.args)
}
