//! The statements of a script and the tables they define: the script cut into statements,
//! Flink's `WATERMARK FOR` clause and the `TABLE t` argument of the window functions taken out
//! before sqlparser parses the rest (it knows neither), and `CREATE TABLE` read into a
//! [`Table`] with its columns, event time and connector.

use std::collections::HashMap;
use std::time::Duration;

use sqlparser::ast::{
    ColumnDef, CreateTable, CreateTableOptions, DataType, DateTimeField, Expr, Spanned, SqlOption,
    Value,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};
use tideflow::Error;

use super::error::{at, in_span, syntax};

/// The type of a column or an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SqlType {
    /// BOOLEAN.
    Bool,
    /// BIGINT (INT, INTEGER): a 64-bit integer.
    Int,
    /// DOUBLE (FLOAT, REAL).
    Double,
    /// STRING (VARCHAR, TEXT).
    Str,
    /// TIMESTAMP(3): milliseconds since the epoch, written as RFC 3339 UTC text.
    Timestamp,
    /// The type of the literal NULL: fits every other.
    Null,
}

impl SqlType {
    /// The type's name as SQL writes it.
    pub(super) fn name(self) -> &'static str {
        match self {
            SqlType::Bool => "BOOLEAN",
            SqlType::Int => "BIGINT",
            SqlType::Double => "DOUBLE",
            SqlType::Str => "STRING",
            SqlType::Timestamp => "TIMESTAMP(3)",
            SqlType::Null => "NULL",
        }
    }

    /// Whether the type is a number (or NULL).
    pub(super) fn numeric(self) -> bool {
        matches!(self, SqlType::Int | SqlType::Double | SqlType::Null)
    }

    /// The type of a column or CAST declared as `data_type`.
    pub(super) fn of(data_type: &DataType, span: Span) -> Result<SqlType, Error> {
        Ok(match data_type {
            DataType::BigInt(_) | DataType::Int(_) | DataType::Integer(_) | DataType::Int64 => {
                SqlType::Int
            }
            DataType::Double(_)
            | DataType::DoublePrecision
            | DataType::Float(_)
            | DataType::Float64
            | DataType::Real => SqlType::Double,
            DataType::String(_) | DataType::Varchar(_) | DataType::Text => SqlType::Str,
            DataType::Bool | DataType::Boolean => SqlType::Bool,
            DataType::Timestamp(None | Some(3), _) => SqlType::Timestamp,
            other => {
                return Err(in_span(
                    span,
                    format!("type {other} is not supported; use BIGINT, DOUBLE, STRING, BOOLEAN or TIMESTAMP(3)"),
                ))
            }
        })
    }
}

/// A table's `WATERMARK FOR column AS column - INTERVAL 'n' UNIT`.
#[derive(Clone, Debug)]
pub(super) struct Watermark {
    pub(super) column: String,
    pub(super) delay: Duration,
}

/// One statement of a script: its tokens without what sqlparser cannot parse, which is kept
/// here instead.
pub(super) struct Statement {
    pub(super) tokens: Vec<TokenWithSpan>,
    /// A `WATERMARK FOR` clause of a `CREATE TABLE`.
    pub(super) watermark: Option<Watermark>,
    /// A window function's `PARTITION BY` columns (Flink's SESSION), with where they are.
    pub(super) partition: Option<(Vec<String>, Span)>,
    /// Where the statement starts.
    pub(super) start: Location,
}

impl Statement {
    /// The statement parsed by sqlparser.
    pub(super) fn parse(&self) -> Result<sqlparser::ast::Statement, Error> {
        let mut parser =
            Parser::new(&GenericDialect {}).with_tokens_with_locations(self.tokens.clone());
        let statement = parser.parse_statement().map_err(syntax)?;
        // One statement: anything after it is an error.
        let next = parser.peek_token();
        if next.token != Token::EOF {
            return Err(at(
                next.span.start,
                format!(
                    "syntax error: expected ';' or the end, found {}",
                    next.token
                ),
            ));
        }
        Ok(statement)
    }
}

fn word_is(token: &Token, keyword: Keyword) -> bool {
    matches!(token, Token::Word(word) if word.keyword == keyword && word.quote_style.is_none())
}

fn word_named(token: &Token, name: &str) -> bool {
    matches!(token, Token::Word(word) if word.value.eq_ignore_ascii_case(name) && word.quote_style.is_none())
}

/// The script cut into its statements (at `;`), without whitespace and comments.
pub(super) fn statements(script: &str) -> Result<Vec<Statement>, Error> {
    let tokens = Tokenizer::new(&GenericDialect {}, script)
        .tokenize_with_location()
        .map_err(|e| at(e.location, format!("syntax error: {}", e.message)))?;
    let mut statements = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    for token in tokens {
        match token.token {
            Token::Whitespace(_) => {}
            Token::SemiColon => {
                if !current.is_empty() {
                    statements.push(prepare(std::mem::take(&mut current))?);
                }
            }
            _ => current.push(token),
        }
    }
    if !current.is_empty() {
        statements.push(prepare(current)?);
    }
    Ok(statements)
}

/// Takes the `WATERMARK FOR` clause and the window functions' `TABLE t [PARTITION BY ...]`
/// out of a statement's tokens.
fn prepare(tokens: Vec<TokenWithSpan>) -> Result<Statement, Error> {
    let start = tokens[0].span.start;
    let mut out: Vec<TokenWithSpan> = Vec::with_capacity(tokens.len());
    let mut watermark = None;
    let mut partition = None;
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i].token;
        let after_comma = out.last().is_some_and(|t| t.token == Token::Comma);
        if word_named(token, "WATERMARK")
            && after_comma
            && tokens
                .get(i + 1)
                .is_some_and(|t| word_is(&t.token, Keyword::FOR))
        {
            out.pop();
            let (clause, end) = watermark_clause(&tokens, i)?;
            watermark = Some(clause);
            i = end;
            continue;
        }
        let in_window_call = out.len() >= 2
            && out[out.len() - 1].token == Token::LParen
            && ["TUMBLE", "HOP", "SESSION", "CUMULATE"]
                .iter()
                .any(|name| word_named(&out[out.len() - 2].token, name));
        if in_window_call && word_is(token, Keyword::TABLE) {
            // `TABLE t`: keep `t`, then take `PARTITION BY a, b` out.
            if let Some(name) = tokens.get(i + 1) {
                out.push(name.clone());
            }
            i += 2;
            if tokens
                .get(i)
                .is_some_and(|t| word_is(&t.token, Keyword::PARTITION))
                && tokens
                    .get(i + 1)
                    .is_some_and(|t| word_is(&t.token, Keyword::BY))
            {
                let span = tokens[i].span;
                i += 2;
                let mut columns = Vec::new();
                while let Some(TokenWithSpan {
                    token: Token::Word(word),
                    ..
                }) = tokens.get(i)
                {
                    columns.push(word.value.clone());
                    i += 1;
                    if tokens.get(i).is_some_and(|t| t.token == Token::Comma)
                        && tokens.get(i + 1).is_some_and(|t| {
                            !matches!(&t.token, Token::Word(w) if w.value.eq_ignore_ascii_case("DESCRIPTOR"))
                        })
                    {
                        i += 1;
                    } else {
                        break;
                    }
                }
                partition = Some((columns, span));
            }
            continue;
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    Ok(Statement {
        tokens: out,
        watermark,
        partition,
        start,
    })
}

/// Reads `WATERMARK FOR c AS c - INTERVAL 'n' UNIT` from `tokens[i]`, up to the `,` or `)`
/// that ends it; returns the clause and the index of that token.
fn watermark_clause(tokens: &[TokenWithSpan], i: usize) -> Result<(Watermark, usize), Error> {
    let span = tokens[i].span;
    let usage = "WATERMARK FOR ts AS ts - INTERVAL '5' SECOND (or AS ts for no delay)";
    let Some(Token::Word(column)) = tokens.get(i + 2).map(|t| &t.token) else {
        return Err(in_span(span, format!("expected {usage}")));
    };
    if !tokens
        .get(i + 3)
        .is_some_and(|t| word_is(&t.token, Keyword::AS))
    {
        return Err(in_span(span, format!("expected {usage}")));
    }
    let mut end = i + 4;
    let mut depth = 0usize;
    while let Some(token) = tokens.get(end) {
        match token.token {
            Token::LParen => depth += 1,
            Token::RParen if depth == 0 => break,
            Token::RParen => depth -= 1,
            Token::Comma if depth == 0 => break,
            _ => {}
        }
        end += 1;
    }
    let expression = tokens[i + 4..end].to_vec();
    let expr = Parser::new(&GenericDialect {})
        .with_tokens_with_locations(expression)
        .parse_expr()
        .map_err(syntax)?;
    let is_column = |e: &Expr| matches!(e, Expr::Identifier(id) if id.value == column.value);
    let delay = match &expr {
        e if is_column(e) => Duration::ZERO,
        Expr::BinaryOp { left, op, right }
            if is_column(left) && *op == sqlparser::ast::BinaryOperator::Minus =>
        {
            interval(right, span)?
        }
        _ => {
            return Err(in_span(
                span,
                format!("expected {usage}: a bounded delay behind the column itself"),
            ))
        }
    };
    let watermark = Watermark {
        column: column.value.clone(),
        delay,
    };
    Ok((watermark, end))
}

/// The length of an `INTERVAL 'n' UNIT` (or `INTERVAL 'n unit'`), or of a string `'n unit'`
/// as Spark's window functions take it.
pub(super) fn interval(expr: &Expr, span: Span) -> Result<Duration, Error> {
    let refuse = || {
        in_span(
            span,
            format!("expected a duration, INTERVAL '10' SECOND or '10 seconds', found {expr}"),
        )
    };
    let (text, unit) = match expr {
        Expr::Interval(interval) => {
            let Expr::Value(value) = interval.value.as_ref() else {
                return Err(refuse());
            };
            let Value::SingleQuotedString(text) = &value.value else {
                return Err(refuse());
            };
            let unit = match &interval.leading_field {
                None => None,
                Some(DateTimeField::Millisecond | DateTimeField::Milliseconds) => Some(1),
                Some(DateTimeField::Second | DateTimeField::Seconds) => Some(1_000),
                Some(DateTimeField::Minute | DateTimeField::Minutes) => Some(60_000),
                Some(DateTimeField::Hour | DateTimeField::Hours) => Some(3_600_000),
                Some(DateTimeField::Day | DateTimeField::Days) => Some(86_400_000),
                Some(_) => return Err(refuse()),
            };
            (text.as_str(), unit)
        }
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text) => (text.as_str(), None),
            _ => return Err(refuse()),
        },
        _ => return Err(refuse()),
    };
    let (number, unit) = match unit {
        Some(unit) => (text.trim(), unit),
        None => {
            let (number, name) = text.trim().split_once(' ').ok_or_else(refuse)?;
            let unit = match name.trim().to_ascii_lowercase().trim_end_matches('s') {
                "millisecond" => 1,
                "second" => 1_000,
                "minute" => 60_000,
                "hour" => 3_600_000,
                "day" => 86_400_000,
                _ => return Err(refuse()),
            };
            (number, unit)
        }
    };
    let number: u64 = number.parse().map_err(|_| refuse())?;
    Ok(Duration::from_millis(number.saturating_mul(unit)))
}

/// Where a table's rows come from or go to.
#[derive(Clone, Debug)]
pub(super) enum Connector {
    /// A file or a directory ('connector' = 'file', 'path' = ...).
    File(String),
    /// Standard input.
    Stdin,
    /// A TCP server, HOST:PORT.
    Tcp(String),
    /// The rate generator, as `tideflow run`'s rate: spec.
    Rate(String),
    /// A Kafka topic, as `tideflow run`'s kafka:// address.
    Kafka(String),
    /// Standard output (a sink).
    Stdout,
}

/// A table of `CREATE TABLE`.
#[derive(Clone, Debug)]
pub(super) struct Table {
    pub(super) name: String,
    pub(super) columns: Vec<(String, SqlType)>,
    pub(super) watermark: Option<Watermark>,
    pub(super) connector: Connector,
    /// 'jsonl' or 'csv'.
    pub(super) format: Option<String>,
    /// A static table ('mode' = 'static'): read whole before the stream, for joins.
    pub(super) is_static: bool,
    pub(super) span: Span,
}

impl Table {
    /// The type of column `name`, if the table has it.
    pub(super) fn column(&self, name: &str) -> Option<SqlType> {
        self.columns
            .iter()
            .find(|(column, _)| column.eq_ignore_ascii_case(name))
            .map(|(_, ty)| *ty)
    }
}

/// The connectors and their options, for messages.
const CONNECTORS: &str = "'connector' = 'file' ('path', 'format' = 'jsonl' | 'csv'), 'stdin' or 'tcp' ('address' = 'HOST:PORT', 'format'), 'rate' ('rows-per-second', 'keys', 'count', 'seed', 'partitions', 'disorder'), 'kafka' ('topic', 'properties.bootstrap.servers') or, for a sink, 'print'; 'mode' = 'static' makes a file table a static one, for joins";

/// Reads a `CREATE TABLE` with the `watermark` taken out of it.
pub(super) fn table(create: &CreateTable, watermark: Option<Watermark>) -> Result<Table, Error> {
    let span = create.name.span();
    let name = create.name.to_string();
    if create.query.is_some() || create.like.is_some() {
        return Err(in_span(span, "CREATE TABLE ... AS SELECT and LIKE are not supported; declare the columns and a connector"));
    }
    let mut columns = Vec::new();
    for ColumnDef {
        name, data_type, ..
    } in &create.columns
    {
        columns.push((name.value.clone(), SqlType::of(data_type, name.span)?));
    }
    let mut options: HashMap<String, String> = HashMap::new();
    let list = match &create.table_options {
        CreateTableOptions::With(list) => list.as_slice(),
        CreateTableOptions::None => &[],
        _ => {
            return Err(in_span(
                span,
                format!("table options go in WITH (...): {CONNECTORS}"),
            ))
        }
    };
    for option in list {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(in_span(
                span,
                format!("expected 'key' = 'value' options: {CONNECTORS}"),
            ));
        };
        let text = match value {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) => s.clone(),
                Value::Number(n, _) => n.clone(),
                _ => {
                    return Err(in_span(
                        key.span,
                        format!("option '{}': expected a string", key.value),
                    ))
                }
            },
            _ => {
                return Err(in_span(
                    key.span,
                    format!("option '{}': expected a string", key.value),
                ))
            }
        };
        options.insert(key.value.to_ascii_lowercase(), text);
    }
    let mut take = |key: &str| options.remove(key);
    let connector_name = take("connector").ok_or_else(|| {
        in_span(
            span,
            format!("table {name}: needs a connector: {CONNECTORS}"),
        )
    })?;
    let required = |value: Option<String>, key: &str| {
        value.ok_or_else(|| {
            in_span(
                span,
                format!("table {name}: connector '{connector_name}' needs '{key}'"),
            )
        })
    };
    let connector = match connector_name.as_str() {
        "file" | "filesystem" => Connector::File(required(take("path"), "path")?),
        "stdin" => Connector::Stdin,
        "tcp" | "socket" => Connector::Tcp(required(take("address"), "address")?),
        "print" | "stdout" => Connector::Stdout,
        "rate" | "datagen" => {
            let mut spec = format!(
                "rate:rows_per_sec={}",
                take("rows-per-second").unwrap_or_else(|| "1000".into())
            );
            for (key, flag) in [
                ("keys", "keys"),
                ("count", "count"),
                ("seed", "seed"),
                ("partitions", "partitions"),
                ("disorder", "disorder"),
            ] {
                if let Some(value) = take(key) {
                    spec.push_str(&format!(",{flag}={value}"));
                }
            }
            Connector::Rate(spec)
        }
        "kafka" => {
            let topic = required(take("topic"), "topic")?;
            let brokers = required(
                take("properties.bootstrap.servers"),
                "properties.bootstrap.servers",
            )?;
            Connector::Kafka(format!("kafka://{brokers}/{topic}"))
        }
        other => {
            return Err(in_span(
                span,
                format!("table {name}: connector '{other}' is not supported; {CONNECTORS}"),
            ))
        }
    };
    let is_static = match take("mode").as_deref() {
        None | Some("stream") => false,
        Some("static") if matches!(connector, Connector::File(_)) => true,
        Some(other) => return Err(in_span(span, format!("table {name}: 'mode' = '{other}' is not supported; 'static' for a file table read whole before the stream (for joins), else leave it out"))),
    };
    let format = take("format");
    if let Some(format) = &format {
        if format != "jsonl" && format != "csv" && format != "json" {
            return Err(in_span(
                span,
                format!("table {name}: format '{format}' is not supported; use 'jsonl' or 'csv'"),
            ));
        }
    }
    let format = format.map(|f| if f == "json" { "jsonl".to_string() } else { f });
    if let Some(key) = options.keys().next() {
        return Err(in_span(
            span,
            format!("table {name}: option '{key}' is not supported; {CONNECTORS}"),
        ));
    }
    if let Some(watermark) = &watermark {
        let time_type = columns
            .iter()
            .find(|(c, _)| *c == watermark.column)
            .map(|(_, t)| *t);
        match time_type {
            Some(SqlType::Int | SqlType::Timestamp) => {}
            Some(other) => return Err(in_span(span, format!("table {name}: WATERMARK FOR {}: the event-time column must be BIGINT (ms since the epoch) or TIMESTAMP(3), not {}", watermark.column, other.name()))),
            None => return Err(in_span(span, format!("table {name}: WATERMARK FOR {}: no such column", watermark.column))),
        }
    }
    Ok(Table {
        name,
        columns,
        watermark,
        connector,
        format,
        is_static,
        span,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(script: &str) -> Statement {
        statements(script).expect("statements").remove(0)
    }

    #[test]
    fn the_watermark_clause_is_taken_out_of_create_table() {
        let statement = first(
            "CREATE TABLE t (ts BIGINT, k STRING, WATERMARK FOR ts AS ts - INTERVAL '5' SECOND) WITH ('connector' = 'stdin')",
        );
        let watermark = statement.watermark.clone().expect("a watermark");
        assert_eq!(watermark.column, "ts");
        assert_eq!(watermark.delay, Duration::from_secs(5));
        let sqlparser::ast::Statement::CreateTable(create) = statement.parse().expect("parses")
        else {
            panic!("not CREATE TABLE");
        };
        let table = table(&create, Some(watermark)).expect("a table");
        assert_eq!(table.columns.len(), 2);
        assert!(matches!(table.connector, Connector::Stdin));
    }

    #[test]
    fn window_functions_lose_their_table_keyword_and_keep_the_partition() {
        let statement = first(
            "SELECT k, COUNT(*) FROM TABLE(SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '4' SECOND)) GROUP BY window_start, window_end, k; SELECT 1",
        );
        assert_eq!(
            statement.partition.as_ref().map(|p| p.0.clone()),
            Some(vec!["k".to_string()])
        );
        assert!(statement.parse().is_ok());
        assert_eq!(statements("SELECT 1;; SELECT 2;").expect("two").len(), 2);
    }

    #[test]
    fn intervals_read_as_flink_and_spark_write_them() {
        let parse = |text: &str| {
            let expr = Parser::new(&GenericDialect {})
                .try_with_sql(text)
                .and_then(|mut p| p.parse_expr())
                .expect("an expression");
            interval(&expr, Span::empty())
        };
        assert_eq!(
            parse("INTERVAL '10' SECOND").ok(),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse("INTERVAL '2' MINUTE").ok(),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse("'5 seconds'").ok(), Some(Duration::from_secs(5)));
        assert_eq!(parse("'1 hour'").ok(), Some(Duration::from_secs(3600)));
        assert!(parse("'5 fortnights'").is_err());
        assert!(parse("INTERVAL '1' YEAR").is_err());
    }
}
