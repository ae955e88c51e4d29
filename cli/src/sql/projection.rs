//! A query without GROUP BY, window or aggregate: each row that passes WHERE is written as
//! the SELECT list makes it, as it is read (no state, no exchange before the sink).

use std::sync::Arc;

use tideflow::Error;

use super::catalog::SqlType;
use super::expr::Expr;
use super::stages::{Before, KeyShape, Output, SqlStages, Texts};
use crate::record::write_json_str;
use crate::run::Plan;

/// The `,"name":` that starts each output column (the first without the comma).
pub(super) fn members(names: &[String]) -> Vec<Vec<u8>> {
    (names.iter().enumerate())
        .map(|(i, name)| {
            let mut member = if i == 0 { Vec::new() } else { b",".to_vec() };
            write_json_str(name, &mut member);
            member.push(b':');
            member
        })
        .collect()
}

/// Whether SQL `text` calls an aggregate function (`count(`, `SUM (`, ...).
pub(super) fn names_aggregate(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    ["count", "sum", "avg", "min", "max"].iter().any(|name| {
        lower.match_indices(name).any(|(at, _)| {
            let before = at.checked_sub(1).map(|i| bytes[i]);
            let starts =
                !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
            starts && lower[at + name.len()..].trim_start().starts_with('(')
        })
    })
}

/// The parts of a stateless query.
pub(super) struct Projection {
    /// The source columns read.
    pub(super) reads: Vec<(String, SqlType)>,
    pub(super) filter: Option<(Expr, String)>,
    /// The SELECT list over the row, with types.
    pub(super) outputs: Vec<(Expr, SqlType)>,
    pub(super) names: Vec<String>,
    /// The SELECT list's SQL text.
    pub(super) select: Vec<String>,
}

impl Projection {
    /// The plan: the source and target `flags`, then the stages that filter and project.
    pub(super) fn plan(
        self,
        mut flags: Vec<String>,
        kafka: bool,
        settings: &[String],
    ) -> Result<Plan, Error> {
        if kafka {
            return Err(Error::Config(
                "sql: a query without GROUP BY writes to a 'file' or 'print' sink".into(),
            ));
        }
        if settings.iter().any(|flag| flag == "--mode") {
            return Err(Error::Config(
                "sql: SET 'output-mode': a query without GROUP BY writes each row once, as it is read; leave output-mode out".into(),
            ));
        }
        // `run` always aggregates: the flags name a count the stages never reach.
        flags.extend(["--agg", "count", "--mode", "update"].map(String::from));
        flags.extend(settings.iter().cloned());
        let plan = super::query::plan_of(&flags)?;
        let outputs = (self.outputs.iter().zip(members(&self.names)).enumerate())
            .map(|(i, ((_, ty), member))| Output {
                member,
                expr: Expr::Slot(i),
                ty: *ty,
            })
            .collect();
        let reads: Vec<String> = self.reads.iter().map(|(name, _)| name.clone()).collect();
        let stages = SqlStages {
            before: Some(Before {
                reads: self.reads,
                filter: self.filter.as_ref().map(|(e, _)| e.clone()),
                keys: Vec::new(),
                values: Vec::new(),
                scalars: self.outputs.into_iter().map(|(e, _)| e).collect(),
            }),
            key: KeyShape::None,
            key_types: Vec::new(),
            windowed: false,
            stateless: true,
            having: None,
            outputs,
            texts: Texts {
                filter: self.filter.map(|(_, text)| text),
                select: self.select,
                ..Texts::default()
            },
        };
        plan.with_stages(Some(reads), Arc::new(stages))
    }
}

#[cfg(test)]
mod tests {
    use super::names_aggregate;

    #[test]
    fn aggregates_are_told_from_columns_of_their_names() {
        assert!(names_aggregate("COUNT(*)"));
        assert!(names_aggregate("1 + sum (x)"));
        assert!(!names_aggregate("amount + 1"));
        assert!(!names_aggregate("t.count + 1"));
        assert!(!names_aggregate("discount(x)"));
    }
}
