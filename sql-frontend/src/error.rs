//! Building SQL errors with positions from sqlparser spans.

use ciuf_engine::{Error, Position, SqlError, SqlErrorKind};
use sqlparser::tokenizer::Span;

/// The start of `span` as a position, unless the span is empty.
pub(crate) fn position(span: Span) -> Option<Position> {
    (span.start.line > 0).then_some(Position { line: span.start.line, column: span.start.column })
}

/// An error of `kind` at `span`.
pub(crate) fn sql_error(kind: SqlErrorKind, message: impl Into<String>, span: Span) -> Error {
    SqlError::new(kind, message).at(position(span)).into()
}

/// "unsupported: what" at `span`.
pub(crate) fn unsupported(what: impl std::fmt::Display, span: Span) -> Error {
    SqlError::unsupported(what).at(position(span)).into()
}

/// A type error at `span`.
pub(crate) fn type_error(message: impl Into<String>, span: Span) -> Error {
    sql_error(SqlErrorKind::Type, message, span)
}
