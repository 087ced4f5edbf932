//! # ciuf-engine
//!
//! The incremental core of ciuf: tables, an operator graph, and views kept exactly up
//! to date as rows change. It knows no SQL text and does no I/O; large transactions
//! run on a pool of worker threads ([`workers`]). The `ciuf-sql` crate turns SQL into
//! the [`Plan`]s it runs.
//!
//! ```text
//!  changes ──▶ tables ──(deltas)──▶ graph of operators ──(deltas)──▶ views ──▶ Arrow
//!  (Change)    checked,             filter, project, join,          published    query()
//!              undoable             aggregate, distinct, top-k      atomically
//! ```
//!
//! - A *delta* is a Z-set of rows with signed weights ([`ZSet`]); an update is −old
//!   +new. Every operator turns its inputs' deltas into its output's delta (see
//!   [`operator`]), keeping only the state its rule needs: work per transaction is
//!   proportional to what the transaction touches, never to the size of the tables.
//! - A transaction ([`Database::apply`]) is atomic: checked against the tables first,
//!   rolled back whole on the first bad change, then run through the graph in one
//!   pass and published to readers in one step.
//! - A [`Database`] holds the tables, the views and the operator graph that keeps
//!   them up to date, the *dataflow* (`dataflow.rs`).
//! - Views ([`View`]) are read concurrently with writes and always show the state
//!   between two whole transactions.

pub mod arrow_in;
pub mod arrow_out;
pub mod budget;
pub mod catalog;
pub mod change;
pub mod database;
mod dataflow;
pub mod datetime;
pub mod decimal;
mod drop_later;
pub mod error;
pub mod expr;
pub mod journal;
pub mod operator;
mod optimize;
mod partial;
pub mod plan;
#[cfg(feature = "polars")]
pub mod polars_out;
mod probe_ahead;
pub mod profile;
pub mod row;
pub mod row_memory;
pub mod sort;
mod table;
pub mod types;
pub mod value;
pub mod view;
pub mod workers;
pub mod zset;

pub use catalog::{Catalog, Dialect};
pub use change::{Change, RowData, TableRef};
pub use database::{Database, Stats};
pub use decimal::Decimal;
pub use error::{ConstraintError, Error, Position, Result, SchemaError, SqlError, SqlErrorKind};
pub use expr::Expr;
pub use journal::Journal;
pub use plan::{
    AggFunc, AggregateCall, EmptyRow, JoinEdge, JoinKind, Param, ParamRole, ParamSpec, Plan, SortKey, TableId, ViewDef,
};
pub use profile::{NodeProfile, Profile};
pub use row::Row;
pub use table::coerce;
pub use types::{Column, DataType, TableSchema};
pub use value::{Str, TextInterner, Value};
pub use view::{PartialLimits, View, ViewId};
pub use zset::{Weight, ZSet};

pub use arrow_array::RecordBatch;
