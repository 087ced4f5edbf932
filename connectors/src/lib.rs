//! # ciuf-connectors
//!
//! Change sources that feed a [`ciuf_engine::Dataflow`] from a database: SQLite files
//! (schema discovery, initial load, captured writes) and PostgreSQL logical
//! replication (consistent snapshot, then streamed transactions). Changes pushed by the
//! application itself need no connector: they go straight to
//! [`ciuf_engine::Dataflow::apply`].
//!
//! Neither source is built yet; each arrives with its own issue. Until then
//! `ciuf::Engine::open` refuses their URLs with an error that says so.
