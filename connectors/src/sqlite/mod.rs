//! SQLite files as a source: schema discovery, a consistent load, then every write to
//! the followed tables — from any connection or process — captured and applied.
//!
//! SQLite has no replication stream, so ciuf installs one: AFTER INSERT/UPDATE/DELETE
//! triggers on each followed table write the change into a log table (`_ciuf_log`) in
//! the same transaction as the write, so a rolled-back write never reaches the log
//! and a committed one always does. The source polls `PRAGMA data_version` (which
//! moves when another connection commits), reads the new log rows in order and
//! applies them as one engine transaction: each source transaction whole, several
//! together if they committed while the previous batch was applied — a view always
//! equals the database at some commit. Log rows every follower has applied are
//! deleted.
//!
//! - `url`: `sqlite://` URLs (SQLAlchemy's forms too);
//! - `schema`: tables and column types by SQLite's affinity rules, values converted;
//! - `capture`: the log table and triggers, installed and removed;
//! - `source`: the thread that loads and follows.

mod capture;
mod error;
mod schema;
mod source;
mod url;

pub use capture::{install_capture, remove_capture};
pub use error::SqliteError;
pub use source::{LOADING_KEY, READER_KEY, SqliteOptions, SqliteSource};
pub use url::{SqliteTarget, parse_url};
