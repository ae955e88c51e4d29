//! The errors of `tideflow sql`: each names the line and column of the construct at fault and
//! says what is supported instead.

use sqlparser::parser::ParserError;
use sqlparser::tokenizer::{Location, Span};
use tideflow::Error;

/// An error at `location` (a user mistake: exit code 2).
pub(super) fn at(location: Location, message: impl std::fmt::Display) -> Error {
    match location.line {
        // sqlparser leaves the span of some constructs empty.
        0 => Error::Config(format!("sql: {message}")),
        line => Error::Config(format!(
            "sql: line {line}, column {}: {message}",
            location.column
        )),
    }
}

/// An error at the start of `span`.
pub(super) fn in_span(span: Span, message: impl std::fmt::Display) -> Error {
    at(span.start, message)
}

/// A parser error as `sql: line L, column C: syntax error: ...` (sqlparser ends its message
/// with ` at Line: L, Column: C`).
pub(super) fn syntax(error: ParserError) -> Error {
    let text = match error {
        ParserError::TokenizerError(text) | ParserError::ParserError(text) => text,
        ParserError::RecursionLimitExceeded => {
            return Error::Config("sql: syntax error: the statement nests too deeply".into())
        }
    };
    let Some((message, place)) = text.rsplit_once(" at Line: ") else {
        return Error::Config(format!("sql: syntax error: {text}"));
    };
    let Some((line, column)) = place.split_once(", Column: ") else {
        return Error::Config(format!("sql: syntax error: {text}"));
    };
    let message = message
        .strip_prefix("sql parser error: ")
        .unwrap_or(message);
    Error::Config(format!(
        "sql: line {line}, column {column}: syntax error: {message}"
    ))
}
