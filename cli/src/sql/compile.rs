//! sqlparser's expressions compiled into [`Expr`]s, with their types checked: over the rows of
//! the source table (WHERE, GROUP BY keys, aggregate arguments) or over the groups the
//! aggregation makes (the SELECT list and HAVING: group keys, window bounds, aggregates).

use sqlparser::ast::{
    self, BinaryOperator, CastKind, DuplicateTreatment, FunctionArg, FunctionArgExpr,
    FunctionArguments, Spanned, UnaryOperator,
};
use tideflow::Error;

use super::catalog::{SqlType, Table};
use super::error::in_span;
use super::expr::{BinOp, Expr, Func, TimePart, Value};
use crate::record::{AggKind, Key};

/// One aggregate of a query, as the aggregation runs it.
#[derive(Clone, Debug)]
pub(super) struct Aggregate {
    pub(super) kind: AggKind,
    /// The field it reads (`None` for COUNT(*)): a column's name, or the argument's SQL text.
    pub(super) field: Option<String>,
    /// The argument over the source row.
    pub(super) arg: Option<(Expr, SqlType)>,
    /// Whether the argument is a column the source decodes as the aggregate reads it.
    pub(super) plain: bool,
}

/// A GROUP BY key.
#[derive(Clone, Debug)]
pub(super) struct GroupKey {
    /// Its SQL text, which the SELECT list and HAVING refer to it by.
    pub(super) text: String,
    pub(super) expr: Expr,
    pub(super) ty: SqlType,
    /// The column, when the key is one.
    pub(super) column: Option<String>,
}

/// Where names resolve: the source's rows, or the groups.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// The source's rows; the clause is named in errors (WHERE, GROUP BY, an aggregate).
    Row(&'static str),
    /// The groups: keys, window bounds and aggregates.
    Group,
}

/// Compiles the expressions of one query over one source table.
pub(super) struct Compiler<'a> {
    pub(super) table: &'a Table,
    /// The names the table is referred to by (its name and alias).
    pub(super) qualifiers: Vec<String>,
    /// The source columns read, in slot order of the row stage.
    pub(super) reads: Vec<(String, SqlType)>,
    pub(super) keys: Vec<GroupKey>,
    pub(super) aggs: Vec<Aggregate>,
    /// Whether the groups are windows, and how the query names their bounds: Spark's
    /// `window.start`, or Flink's `window_start`.
    pub(super) window: Option<WindowNames>,
    /// A static table joined to the stream: its columns read as `table.F`.
    pub(super) lookup: Option<&'a super::join::Lookup<'a>>,
}

/// How a windowed query names its window bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum WindowNames {
    /// `window.start`, `window.end` (Spark's window()).
    Spark,
    /// `session_window.start`, `session_window.end` (Spark's session_window()).
    SparkSession,
    /// `window_start`, `window_end` (Flink's TUMBLE, HOP and SESSION).
    Flink,
}

/// The slot of the window start in a group row; the end is the next one.
fn window_slot(keys: usize) -> usize {
    keys
}

fn column_name(expr: &ast::Expr) -> Option<(Vec<String>, sqlparser::tokenizer::Span)> {
    match expr {
        ast::Expr::Identifier(id) => Some((vec![id.value.clone()], id.span)),
        ast::Expr::CompoundIdentifier(parts) => {
            Some((parts.iter().map(|p| p.value.clone()).collect(), expr.span()))
        }
        // sqlparser reads `user` as the function CURRENT_USER's synonym.
        ast::Expr::Function(f) if matches!(f.args, FunctionArguments::None) => {
            let parts = f.name.0.iter().map(|part| match part {
                ast::ObjectNamePart::Identifier(id) => id.value.clone(),
                other => other.to_string(),
            });
            Some((parts.collect(), expr.span()))
        }
        _ => None,
    }
}

/// The function's name in lower case.
fn function_name(f: &ast::Function) -> String {
    f.name.to_string().to_ascii_lowercase()
}

/// The arguments of a call, as expressions (`*` is `None`).
pub(super) fn call_args(f: &ast::Function) -> Result<Vec<Option<&ast::Expr>>, Error> {
    let span = f.name.span();
    match &f.args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|arg| match arg {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(Some(e)),
                FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => Ok(None),
                _ => Err(in_span(
                    span,
                    format!("{}: named or qualified arguments are not supported", f.name),
                )),
            })
            .collect(),
        FunctionArguments::None => Ok(Vec::new()),
        FunctionArguments::Subquery(_) => Err(in_span(span, "subqueries are not supported")),
    }
}

/// Whether `name` is an aggregate function tideflow runs.
pub(super) fn is_aggregate(name: &str) -> bool {
    matches!(name, "count" | "sum" | "avg" | "min" | "max")
}

/// A type mismatch between the operands of `expr`.
fn mismatch(expr: &ast::Expr, what: &str, a: SqlType, b: SqlType) -> Error {
    in_span(
        expr.span(),
        format!(
            "type mismatch in {expr}: {what} {} and {}; CAST one side (CAST(x AS DOUBLE), CAST(x AS STRING), ...)",
            a.name(),
            b.name()
        ),
    )
}

/// The type two branches (CASE, COALESCE, IN) share, if any.
fn unify(a: SqlType, b: SqlType) -> Option<SqlType> {
    match (a, b) {
        (a, b) if a == b => Some(a),
        (SqlType::Null, other) | (other, SqlType::Null) => Some(other),
        (SqlType::Int, SqlType::Double) | (SqlType::Double, SqlType::Int) => Some(SqlType::Double),
        _ => None,
    }
}

impl<'a> Compiler<'a> {
    /// The slot of source column `name`, read by the row stage.
    fn read(&mut self, name: &str, ty: SqlType) -> usize {
        if let Some(i) = self.reads.iter().position(|(n, _)| n == name) {
            return i;
        }
        self.reads.push((name.to_string(), ty));
        self.reads.len() - 1
    }

    /// The source column `parts` names (`col` or `table.col`), with its type.
    pub(super) fn column(
        &self,
        parts: &[String],
        span: sqlparser::tokenizer::Span,
    ) -> Result<(String, SqlType), Error> {
        if let Some(lookup) = self.lookup {
            let static_name = match parts {
                [table, name]
                    if lookup
                        .qualifiers
                        .iter()
                        .any(|q| q.eq_ignore_ascii_case(table)) =>
                {
                    Some(name)
                }
                [name] if self.table.column(name).is_none() => Some(name),
                _ => None,
            };
            if let Some(name) = static_name {
                return match lookup
                    .table
                    .columns
                    .iter()
                    .find(|(c, _)| c.eq_ignore_ascii_case(name))
                {
                    Some((column, ty)) => Ok((format!("table.{column}"), *ty)),
                    None => Err(in_span(
                        span,
                        format!(
                            "unknown column {}: table {} has {}",
                            parts.join("."),
                            lookup.table.name,
                            lookup
                                .table
                                .columns
                                .iter()
                                .map(|(c, _)| c.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )),
                };
            }
        }
        let name = match parts {
            [name] => name,
            [table, name]
                if self
                    .qualifiers
                    .iter()
                    .any(|q| q.eq_ignore_ascii_case(table)) =>
            {
                name
            }
            _ => {
                return Err(in_span(
                    span,
                    format!(
                        "unknown column {}: table {} has {}",
                        parts.join("."),
                        self.table.name,
                        self.columns()
                    ),
                ))
            }
        };
        match self
            .table
            .columns
            .iter()
            .find(|(c, _)| c.eq_ignore_ascii_case(name))
        {
            Some((column, ty)) => Ok((column.clone(), *ty)),
            None => Err(in_span(
                span,
                format!(
                    "unknown column {name}: table {} has {}",
                    self.table.name,
                    self.columns()
                ),
            )),
        }
    }

    fn columns(&self) -> String {
        let names: Vec<&str> = self.table.columns.iter().map(|(c, _)| c.as_str()).collect();
        names.join(", ")
    }

    /// A window bound the query names (`window.start`, `window_end`), in a group row's slots.
    fn window_bound(&self, expr: &ast::Expr) -> Option<(usize, &'static str)> {
        let (parts, _) = column_name(expr)?;
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        let bound = match (
            self.window?,
            lower
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
        ) {
            (WindowNames::Spark, ["window", "start"])
            | (WindowNames::SparkSession, ["session_window", "start"])
            | (WindowNames::Flink, ["window_start"]) => 0,
            (WindowNames::Spark, ["window", "end"])
            | (WindowNames::SparkSession, ["session_window", "end"])
            | (WindowNames::Flink, ["window_end"]) => 1,
            _ => return None,
        };
        Some((
            window_slot(self.keys.len()) + bound,
            if bound == 0 { "start" } else { "end" },
        ))
    }

    /// Compiles `expr` in `scope`, with its type.
    pub(super) fn compile(
        &mut self,
        expr: &ast::Expr,
        scope: Scope,
    ) -> Result<(Expr, SqlType), Error> {
        if scope == Scope::Group {
            if let Some(i) = self.keys.iter().position(|k| k.text == expr.to_string()) {
                return Ok((Expr::Slot(i), self.keys[i].ty));
            }
            if let Some((slot, _)) = self.window_bound(expr) {
                let ty = self.time_type();
                return Ok((Expr::Slot(slot), ty));
            }
            // A key column named another way (`e.user` and `user`).
            let column = column_name(expr).and_then(|(parts, span)| self.column(&parts, span).ok());
            if let Some((name, ty)) = column {
                if let Some(i) = self
                    .keys
                    .iter()
                    .position(|k| k.column.as_deref() == Some(name.as_str()))
                {
                    return Ok((Expr::Slot(i), ty));
                }
            }
        }
        if let Some((parts, span)) = column_name(expr) {
            let lower = parts
                .iter()
                .map(|p| p.to_ascii_lowercase())
                .collect::<Vec<_>>();
            if matches!(
                lower.first().map(String::as_str),
                Some("window" | "session_window" | "window_start" | "window_end")
            ) && self.table.column(&parts[0]).is_none()
            {
                let hint = match self.window {
                    None => "the query has no window: GROUP BY window(ts, '10 seconds') (Spark) or FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '10' SECOND)) (Flink)",
                    Some(WindowNames::Spark) => "with Spark's window(), select window.start and window.end",
                    Some(WindowNames::SparkSession) => "with Spark's session_window(), select session_window.start and session_window.end",
                    Some(WindowNames::Flink) => "with Flink's window functions, select window_start and window_end",
                };
                return Err(in_span(span, format!("{}: {hint}", parts.join("."))));
            }
            let (name, ty) = self.column(&parts, span)?;
            return match scope {
                Scope::Row(_) => Ok((Expr::Slot(self.read(&name, ty)), ty)),
                Scope::Group => Err(in_span(span, format!("column {name} is neither in GROUP BY nor inside an aggregate (COUNT, SUM, AVG, MIN, MAX)"))),
            };
        }
        match expr {
            ast::Expr::Nested(inner) => self.compile(inner, scope),
            ast::Expr::Value(value) => literal(&value.value, expr),
            ast::Expr::BinaryOp { left, op, right } => self.binary(expr, left, op, right, scope),
            ast::Expr::UnaryOp { op, expr: inner } => {
                let (e, ty) = self.compile(inner, scope)?;
                match op {
                    UnaryOperator::Not if matches!(ty, SqlType::Bool | SqlType::Null) => Ok((Expr::Not(Box::new(e)), SqlType::Bool)),
                    UnaryOperator::Minus if ty.numeric() => Ok((Expr::Neg(Box::new(e)), ty)),
                    UnaryOperator::Plus if ty.numeric() => Ok((e, ty)),
                    UnaryOperator::Not | UnaryOperator::Minus | UnaryOperator::Plus => Err(in_span(expr.span(), format!("type mismatch in {expr}: {op} does not apply to {}", ty.name()))),
                    _ => Err(in_span(expr.span(), format!("operator {op} is not supported"))),
                }
            }
            ast::Expr::IsNull(inner) | ast::Expr::IsNotNull(inner) => {
                let (e, _) = self.compile(inner, scope)?;
                Ok((Expr::IsNull(Box::new(e), matches!(expr, ast::Expr::IsNotNull(_))), SqlType::Bool))
            }
            ast::Expr::InList { expr: inner, list, negated } => {
                let (e, ty) = self.compile(inner, scope)?;
                let mut items = Vec::new();
                for item in list {
                    let (i, item_ty) = self.compile(item, scope)?;
                    if unify(ty, item_ty).is_none() {
                        return Err(mismatch(expr, "IN compares", ty, item_ty));
                    }
                    items.push(i);
                }
                Ok((Expr::InList(Box::new(e), items, *negated), SqlType::Bool))
            }
            ast::Expr::Between { expr: inner, negated, low, high } => {
                let value = self.compile(inner, scope)?;
                let low = self.compile(low, scope)?;
                let high = self.compile(high, scope)?;
                for bound in [low.1, high.1] {
                    if unify(value.1, bound).is_none() {
                        return Err(mismatch(expr, "BETWEEN compares", value.1, bound));
                    }
                }
                let within = Expr::Binary(
                    BinOp::And,
                    Box::new(Expr::Binary(BinOp::GtEq, Box::new(value.0.clone()), Box::new(low.0))),
                    Box::new(Expr::Binary(BinOp::LtEq, Box::new(value.0), Box::new(high.0))),
                );
                Ok((if *negated { Expr::Not(Box::new(within)) } else { within }, SqlType::Bool))
            }
            ast::Expr::Like { negated, any: false, expr: inner, pattern, escape_char: None } => {
                let (e, ty) = self.compile(inner, scope)?;
                if !matches!(ty, SqlType::Str | SqlType::Null) {
                    return Err(in_span(expr.span(), format!("type mismatch in {expr}: LIKE matches a STRING, not {}", ty.name())));
                }
                let ast::Expr::Value(value) = pattern.as_ref() else {
                    return Err(in_span(pattern.span(), "LIKE takes a string literal pattern"));
                };
                let ast::Value::SingleQuotedString(text) = &value.value else {
                    return Err(in_span(pattern.span(), "LIKE takes a string literal pattern"));
                };
                Ok((Expr::Like(Box::new(e), text.chars().collect(), *negated), SqlType::Bool))
            }
            ast::Expr::Case { operand, conditions, else_result, .. } => {
                let operand = operand.as_ref().map(|o| self.compile(o, scope)).transpose()?;
                let mut branches = Vec::new();
                let mut ty = SqlType::Null;
                for when in conditions {
                    let (condition, cond_ty) = self.compile(&when.condition, scope)?;
                    let condition = match &operand {
                        Some((o, o_ty)) => {
                            if unify(*o_ty, cond_ty).is_none() {
                                return Err(mismatch(expr, "CASE compares", *o_ty, cond_ty));
                            }
                            Expr::Binary(BinOp::Eq, Box::new(o.clone()), Box::new(condition))
                        }
                        None if matches!(cond_ty, SqlType::Bool | SqlType::Null) => condition,
                        None => return Err(in_span(when.condition.span(), format!("type mismatch: a WHEN condition is BOOLEAN, not {}", cond_ty.name()))),
                    };
                    let (result, result_ty) = self.compile(&when.result, scope)?;
                    ty = unify(ty, result_ty).ok_or_else(|| mismatch(expr, "CASE returns", ty, result_ty))?;
                    branches.push((condition, result));
                }
                let otherwise = match else_result {
                    Some(e) => {
                        let (e, e_ty) = self.compile(e, scope)?;
                        ty = unify(ty, e_ty).ok_or_else(|| mismatch(expr, "CASE returns", ty, e_ty))?;
                        Some(Box::new(e))
                    }
                    None => None,
                };
                Ok((Expr::Case(branches, otherwise), ty))
            }
            ast::Expr::Cast { kind: CastKind::Cast | CastKind::DoubleColon, expr: inner, data_type, format: None, .. } => {
                let (e, _) = self.compile(inner, scope)?;
                let ty = SqlType::of(data_type, expr.span())?;
                Ok((Expr::Cast(Box::new(e), ty), ty))
            }
            ast::Expr::Substring { expr: inner, substring_from, substring_for, .. } => {
                let mut args = vec![self.compile(inner, scope)?];
                for part in [substring_from, substring_for].into_iter().flatten() {
                    args.push(self.compile(part, scope)?);
                }
                self.function(expr, Func::Substring, args)
            }
            ast::Expr::Function(f) => self.call(expr, f, scope),
            ast::Expr::Extract { field, expr: inner, .. } => {
                use sqlparser::ast::DateTimeField as Field;
                let part = match field {
                    Field::Year => TimePart::Year,
                    Field::Month => TimePart::Month,
                    Field::Day => TimePart::Day,
                    Field::Hour => TimePart::Hour,
                    Field::Minute => TimePart::Minute,
                    // Spark's has the fraction (a DECIMAL), Flink's does not: refused.
                    Field::Second => return Err(in_span(expr.span(), "EXTRACT(SECOND ...) differs between Spark (with the fraction) and Flink (whole seconds); use SECOND(ts) for whole seconds")),
                    other => return Err(in_span(expr.span(), format!("EXTRACT({other} ...) is not supported; YEAR, MONTH, DAY, HOUR, MINUTE or SECOND"))),
                };
                let arg = self.compile(inner, scope)?;
                self.function(expr, Func::Part(part), vec![arg])
            }
            _ => Err(in_span(expr.span(), format!("{expr} is not supported: tideflow sql takes columns, literals, arithmetic, comparisons, AND/OR/NOT, CASE, CAST, COALESCE, IS [NOT] NULL, IN, BETWEEN, LIKE, LOWER/UPPER/SUBSTRING/CONCAT/LENGTH/ABS and YEAR/MONTH/DAY/HOUR/MINUTE/SECOND/EXTRACT"))),
        }
    }

    /// The type of the window bounds: the event-time column's.
    pub(super) fn time_type(&self) -> SqlType {
        (self.table.watermark.as_ref())
            .and_then(|w| self.table.column(&w.column))
            .unwrap_or(SqlType::Int)
    }

    fn binary(
        &mut self,
        expr: &ast::Expr,
        left: &ast::Expr,
        op: &BinaryOperator,
        right: &ast::Expr,
        scope: Scope,
    ) -> Result<(Expr, SqlType), Error> {
        let (a, a_ty) = self.compile(left, scope)?;
        let (b, b_ty) = self.compile(right, scope)?;
        let op = match op {
            BinaryOperator::Plus => BinOp::Add,
            BinaryOperator::Minus => BinOp::Sub,
            BinaryOperator::Multiply => BinOp::Mul,
            BinaryOperator::Divide => BinOp::Div,
            BinaryOperator::Modulo => BinOp::Mod,
            BinaryOperator::Eq => BinOp::Eq,
            BinaryOperator::NotEq => BinOp::NotEq,
            BinaryOperator::Lt => BinOp::Lt,
            BinaryOperator::LtEq => BinOp::LtEq,
            BinaryOperator::Gt => BinOp::Gt,
            BinaryOperator::GtEq => BinOp::GtEq,
            BinaryOperator::And => BinOp::And,
            BinaryOperator::Or => BinOp::Or,
            BinaryOperator::StringConcat => BinOp::Concat,
            other => {
                return Err(in_span(
                    expr.span(),
                    format!("operator {other} is not supported"),
                ))
            }
        };
        let ty = match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Mod => {
                if !a_ty.numeric() || !b_ty.numeric() {
                    return Err(mismatch(
                        expr,
                        &format!("{op:?} takes numbers, not"),
                        a_ty,
                        b_ty,
                    ));
                }
                if a_ty == SqlType::Double || b_ty == SqlType::Double {
                    SqlType::Double
                } else {
                    SqlType::Int
                }
            }
            BinOp::Div => {
                if !a_ty.numeric() || !b_ty.numeric() {
                    return Err(mismatch(expr, "/ takes numbers, not", a_ty, b_ty));
                }
                SqlType::Double
            }
            BinOp::And | BinOp::Or => {
                for ty in [a_ty, b_ty] {
                    if !matches!(ty, SqlType::Bool | SqlType::Null) {
                        return Err(mismatch(expr, "AND and OR take BOOLEANs, not", a_ty, b_ty));
                    }
                }
                SqlType::Bool
            }
            BinOp::Concat => SqlType::Str,
            _ => {
                if unify(a_ty, b_ty).is_none() {
                    return Err(mismatch(expr, "cannot compare", a_ty, b_ty));
                }
                SqlType::Bool
            }
        };
        Ok((Expr::Binary(op, Box::new(a), Box::new(b)), ty))
    }

    fn call(
        &mut self,
        expr: &ast::Expr,
        f: &ast::Function,
        scope: Scope,
    ) -> Result<(Expr, SqlType), Error> {
        let name = function_name(f);
        if f.over.is_some() || f.filter.is_some() {
            return Err(in_span(
                expr.span(),
                format!("{name}: OVER and FILTER are not supported"),
            ));
        }
        if is_aggregate(&name) {
            return match scope {
                Scope::Group => self.aggregate(expr, f, &name),
                Scope::Row(clause) => Err(in_span(
                    expr.span(),
                    format!(
                        "aggregate {expr} in {clause}: aggregates go in the SELECT list or HAVING"
                    ),
                )),
            };
        }
        if name == "date_format" {
            let args = call_args(f)?;
            let [Some(time), Some(ast::Expr::Value(pattern))] = args.as_slice() else {
                return Err(in_span(expr.span(), "DATE_FORMAT takes a TIMESTAMP and a pattern literal, DATE_FORMAT(ts, 'yyyy-MM-dd HH:mm')"));
            };
            let ast::Value::SingleQuotedString(pattern) = &pattern.value else {
                return Err(in_span(
                    expr.span(),
                    "DATE_FORMAT takes a pattern literal, 'yyyy-MM-dd HH:mm'",
                ));
            };
            let format = super::expr::chrono_pattern(pattern)
                .map_err(|why| in_span(expr.span(), format!("DATE_FORMAT: {why}")))?;
            let (time, ty) = self.compile(time, scope)?;
            if !matches!(ty, SqlType::Timestamp | SqlType::Null) {
                return Err(in_span(expr.span(), format!("type mismatch in {expr}: DATE_FORMAT takes a TIMESTAMP, not {}; CAST(x AS TIMESTAMP)", ty.name())));
            }
            let format = Expr::Literal(crate::record::Key::Str(format.into()));
            return Ok((
                Expr::Call(Func::DateFormat, vec![time, format]),
                SqlType::Str,
            ));
        }
        if name == "mod" {
            let args = call_args(f)?;
            let [Some(a), Some(b)] = args.as_slice() else {
                return Err(in_span(expr.span(), "MOD takes two arguments, MOD(a, b)"));
            };
            let (a, a_ty) = self.compile(a, scope)?;
            let (b, b_ty) = self.compile(b, scope)?;
            if !matches!(
                (a_ty, b_ty),
                (SqlType::Int | SqlType::Null, SqlType::Int | SqlType::Null)
            ) {
                return Err(mismatch(expr, "MOD takes BIGINTs, not", a_ty, b_ty));
            }
            return Ok((
                Expr::Binary(BinOp::Mod, Box::new(a), Box::new(b)),
                SqlType::Int,
            ));
        }
        if name == "window" || name == "session_window" {
            return Err(in_span(
                expr.span(),
                format!("{name}() goes in GROUP BY; select window.start and window.end"),
            ));
        }
        let func = match name.as_str() {
            "lower" | "lcase" => Func::Lower,
            "upper" | "ucase" => Func::Upper,
            "length" | "char_length" | "character_length" => Func::Length,
            "substring" | "substr" => Func::Substring,
            "concat" => Func::Concat,
            "coalesce" => Func::Coalesce,
            "abs" => Func::Abs,
            "year" => Func::Part(TimePart::Year),
            "month" => Func::Part(TimePart::Month),
            "day" | "dayofmonth" => Func::Part(TimePart::Day),
            "hour" => Func::Part(TimePart::Hour),
            "minute" => Func::Part(TimePart::Minute),
            "second" => Func::Part(TimePart::Second),
            _ => return Err(in_span(expr.span(), format!("function {name} is not supported; scalar functions: LOWER, UPPER, LENGTH, SUBSTRING, CONCAT, COALESCE, ABS, YEAR/MONTH/DAY/HOUR/MINUTE/SECOND of a TIMESTAMP (or EXTRACT), DATE_FORMAT; aggregates: COUNT, SUM, AVG, MIN, MAX"))),
        };
        let mut args = Vec::new();
        for arg in call_args(f)? {
            let arg =
                arg.ok_or_else(|| in_span(expr.span(), format!("{name}(*) is not supported")))?;
            args.push(self.compile(arg, scope)?);
        }
        self.function(expr, func, args)
    }

    fn function(
        &mut self,
        expr: &ast::Expr,
        func: Func,
        args: Vec<(Expr, SqlType)>,
    ) -> Result<(Expr, SqlType), Error> {
        let count = |range: std::ops::RangeInclusive<usize>| match range.contains(&args.len()) {
            true => Ok(()),
            false => Err(in_span(
                expr.span(),
                format!(
                    "{expr}: takes {} to {} arguments",
                    range.start(),
                    range.end()
                ),
            )),
        };
        let string_arg = |i: usize| match args[i].1 {
            SqlType::Str | SqlType::Null => Ok(()),
            other => Err(in_span(
                expr.span(),
                format!(
                    "type mismatch in {expr}: expects a STRING, not {}; CAST(x AS STRING)",
                    other.name()
                ),
            )),
        };
        let ty = match func {
            Func::Lower | Func::Upper => {
                count(1..=1)?;
                string_arg(0)?;
                SqlType::Str
            }
            Func::Length => {
                count(1..=1)?;
                string_arg(0)?;
                SqlType::Int
            }
            Func::Substring => {
                count(2..=3)?;
                string_arg(0)?;
                if args[1..]
                    .iter()
                    .any(|(_, ty)| !matches!(ty, SqlType::Int | SqlType::Null))
                {
                    return Err(in_span(
                        expr.span(),
                        format!("type mismatch in {expr}: the position and length are BIGINT"),
                    ));
                }
                SqlType::Str
            }
            Func::Concat => {
                count(1..=usize::MAX)?;
                SqlType::Str
            }
            Func::Coalesce => {
                count(1..=usize::MAX)?;
                let mut ty = SqlType::Null;
                for (_, arg_ty) in &args {
                    ty = unify(ty, *arg_ty)
                        .ok_or_else(|| mismatch(expr, "COALESCE takes", ty, *arg_ty))?;
                }
                ty
            }
            Func::DateFormat => SqlType::Str,
            Func::Part(_) => {
                count(1..=1)?;
                if !matches!(args[0].1, SqlType::Timestamp | SqlType::Null) {
                    return Err(in_span(expr.span(), format!("type mismatch in {expr}: takes a TIMESTAMP, not {}; CAST(x AS TIMESTAMP)", args[0].1.name())));
                }
                SqlType::Int
            }
            Func::Abs => {
                count(1..=1)?;
                if !args[0].1.numeric() {
                    return Err(in_span(
                        expr.span(),
                        format!(
                            "type mismatch in {expr}: ABS takes a number, not {}",
                            args[0].1.name()
                        ),
                    ));
                }
                args[0].1
            }
        };
        Ok((
            Expr::Call(func, args.into_iter().map(|(e, _)| e).collect()),
            ty,
        ))
    }

    /// An aggregate call, as a slot of the group row (added to the query's aggregates the
    /// first time it is named).
    fn aggregate(
        &mut self,
        expr: &ast::Expr,
        f: &ast::Function,
        name: &str,
    ) -> Result<(Expr, SqlType), Error> {
        let distinct = matches!(&f.args, FunctionArguments::List(list) if list.duplicate_treatment == Some(DuplicateTreatment::Distinct));
        let args = call_args(f)?;
        let [arg] = args.as_slice() else {
            return Err(in_span(expr.span(), format!("{name} takes one argument")));
        };
        let compiled = match arg {
            None if name == "count" && !distinct => None,
            None => {
                return Err(in_span(
                    expr.span(),
                    format!("{name}(*) is not supported; only COUNT(*)"),
                ))
            }
            Some(arg) => {
                let plain =
                    column_name(arg).and_then(|(parts, span)| self.column(&parts, span).ok());
                let (e, ty) = self.compile(arg, Scope::Row("an aggregate's argument"))?;
                match plain {
                    Some((column, _)) => Some((column, e, ty, true)),
                    None => Some((arg.to_string(), e, ty, false)),
                }
            }
        };
        if distinct && name != "count" {
            return Err(in_span(
                expr.span(),
                format!("{name}(DISTINCT ...) is not supported; only COUNT(DISTINCT col)"),
            ));
        }
        let (kind, field, arg, plain, ty) = match (name, compiled) {
            ("count", None) => (AggKind::Count, None, None, true, SqlType::Int),
            ("count", Some((text, e, ty, plain))) if distinct => (
                AggKind::CountDistinct,
                Some(text),
                Some((e, ty)),
                plain,
                SqlType::Int,
            ),
            ("count", Some((text, e, _, _))) => {
                // COUNT(x) sums 1 for each row where x is not null.
                let one_if_set = Expr::Case(
                    vec![(Expr::IsNull(Box::new(e), false), Expr::Literal(Key::Int(0)))],
                    Some(Box::new(Expr::Literal(Key::Int(1)))),
                );
                (
                    AggKind::Sum,
                    Some(format!("{text} IS NOT NULL")),
                    Some((one_if_set, SqlType::Int)),
                    false,
                    SqlType::Int,
                )
            }
            (_, Some((text, e, ty, plain))) => {
                if !matches!(
                    ty,
                    SqlType::Int | SqlType::Double | SqlType::Timestamp | SqlType::Null
                ) || (name != "min" && name != "max" && ty == SqlType::Timestamp)
                {
                    return Err(in_span(
                        expr.span(),
                        format!(
                            "type mismatch in {expr}: {} takes a number, not {}{}",
                            name.to_uppercase(),
                            ty.name(),
                            if ty == SqlType::Str {
                                "; CAST(x AS DOUBLE) if it holds numbers"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                let (kind, out) = match name {
                    "sum" => (AggKind::Sum, ty),
                    "avg" => (AggKind::Avg, SqlType::Double),
                    "min" => (AggKind::Min, ty),
                    _ => (AggKind::Max, ty),
                };
                (kind, Some(text), Some((e, ty)), plain, out)
            }
            (_, None) => return Err(in_span(expr.span(), format!("{name}(*) is not supported"))),
        };
        let slot = match self
            .aggs
            .iter()
            .position(|a| a.kind == kind && a.field == field)
        {
            Some(i) => i,
            None => {
                self.aggs.push(Aggregate {
                    kind,
                    field,
                    arg,
                    plain,
                });
                self.aggs.len() - 1
            }
        };
        let window = if self.window.is_some() { 2 } else { 0 };
        Ok((Expr::Slot(self.keys.len() + window + slot), ty))
    }
}

/// A literal's value and type.
fn literal(value: &ast::Value, expr: &ast::Expr) -> Result<(Expr, SqlType), Error> {
    let (value, ty) = match value {
        ast::Value::Number(text, _) => match text.parse::<i64>() {
            Ok(i) => (Key::Int(i), SqlType::Int),
            Err(_) => match text.parse::<f64>() {
                Ok(f) => (Key::Float(f), SqlType::Double),
                Err(_) => {
                    return Err(in_span(
                        expr.span(),
                        format!("number {text} is out of range"),
                    ))
                }
            },
        },
        ast::Value::SingleQuotedString(text) => (Key::Str(text.as_str().into()), SqlType::Str),
        ast::Value::Boolean(b) => (Key::Bool(*b), SqlType::Bool),
        ast::Value::Null => (Key::Null, SqlType::Null),
        _ => {
            return Err(in_span(
                expr.span(),
                format!(
                    "literal {expr} is not supported; use numbers, 'strings', TRUE, FALSE or NULL"
                ),
            ))
        }
    };
    Ok((Expr::Literal(value as Value), ty))
}

/// The source column an expression names, if it is one: `(parts, span)`.
pub(super) fn as_column(expr: &ast::Expr) -> Option<(Vec<String>, sqlparser::tokenizer::Span)> {
    column_name(expr)
}
