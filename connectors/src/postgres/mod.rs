//! PostgreSQL as a source: schema discovery, a consistent snapshot, then logical
//! replication (pgoutput) streamed into the engine, one source transaction at a time.
//!
//! - `config`: URLs and options;
//! - `wire`: the replication connection (tokio-postgres has none);
//! - `pgoutput`: the logical replication message decoder;
//! - `catalog`, `types`: tables and values as the engine has them;
//! - `copy`: the snapshot;
//! - `stream`: messages to engine transactions;
//! - `source`: the thread that runs it all, and reconnects.

mod catalog;
mod config;
mod copy;
mod error;
pub mod pgoutput;
mod source;
mod stream;
mod tls;
mod types;
mod wire;

pub use config::{PostgresOptions, identity};
pub use error::{PgError, ServerError};
pub use source::{LOADING_KEY, OWN_PUBLICATION_KEY, PUBLICATION_KEY, PostgresSource, SLOT_KEY, drop_replication};
