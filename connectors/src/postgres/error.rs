//! What can go wrong with a PostgreSQL source, said plainly (never with a password).

use std::fmt;

/// A PostgreSQL source failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PgError {
    /// The URL or options are not usable.
    #[error("{0}")]
    Config(String),
    /// The server could not be reached, or the connection broke.
    #[error("cannot reach PostgreSQL at {target}: {reason}")]
    Connect {
        /// host:port.
        target: String,
        /// Why.
        reason: String,
    },
    /// The server refused or failed a request.
    #[error("{0}")]
    Server(ServerError),
    /// The server sent something this client does not understand.
    #[error("PostgreSQL protocol error: {0}")]
    Protocol(String),
    /// A table cannot be replicated as it is (type, replica identity, rights).
    #[error("{0}")]
    Schema(String),
}

impl PgError {
    /// Whether trying again later may succeed (a dropped connection, a restart).
    pub fn retryable(&self) -> bool {
        match self {
            PgError::Connect { .. } => true,
            PgError::Server(e) => {
                // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now,
                // 53300 too_many_connections, 08xxx connection exceptions.
                matches!(e.code.as_str(), "57P01" | "57P02" | "57P03" | "53300") || e.code.starts_with("08")
            }
            _ => false,
        }
    }
}

/// An ErrorResponse from the server, with a hint of ours where the fix is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    /// SQLSTATE.
    pub code: String,
    /// The server's message.
    pub message: String,
    /// The server's detail, if any.
    pub detail: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL: {} (SQLSTATE {})", self.message, self.code)?;
        if let Some(d) = &self.detail {
            write!(f, "; {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "; {h}")?;
        }
        Ok(())
    }
}

impl From<PgError> for ciuf_engine::Error {
    fn from(e: PgError) -> Self {
        let retryable = e.retryable();
        ciuf_engine::Error::Source { message: e.to_string(), retryable }
    }
}

/// The hint for a server error we know the fix of.
pub fn hint_for(code: &str, message: &str) -> Option<String> {
    let m = message.to_ascii_lowercase();
    Some(
        match code {
            "28P01" => "check the user name and password in the URL".to_string(),
            "28000" if m.contains("pg_hba") => {
                "add a line for this user (and, for replication, the 'replication' database) to pg_hba.conf".to_string()
            }
            "42501" if m.contains("replication") => {
                "the role needs the REPLICATION attribute: ALTER ROLE <user> REPLICATION".to_string()
            }
            "42501" if m.contains("must be owner") => {
                "ciuf puts the tables views read in a publication of its own, which PostgreSQL allows only to \
                 a table's owner: have the owner (or a superuser) run CREATE PUBLICATION ciuf FOR TABLE … and \
                 pass it as publication='ciuf' (Python: Engine(url, publication='ciuf')), or connect as the owner"
                    .to_string()
            }
            "42501" if m.contains("permission denied for database") => {
                "ciuf puts the tables views read in a publication of its own, which needs CREATE on the database \
                 (GRANT CREATE ON DATABASE <db> TO <user>) and ownership of the tables; or have the owner create \
                 one (CREATE PUBLICATION ciuf FOR TABLE …) and pass publication='ciuf'"
                    .to_string()
            }
            "42501" if m.contains("permission denied for") => {
                "grant the role SELECT on the tables the views read (GRANT SELECT ON <table> TO <user>)".to_string()
            }
            "42501" => "ciuf needs a role with REPLICATION and SELECT on the tables, and either ownership of the \
                        tables and CREATE on the database (for its publication) or a publication made for it \
                        (publication=…)"
                .to_string(),
            "55000" if m.contains("wal_level") => {
                "set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL"
                    .to_string()
            }
            "53400" if m.contains("replication slot") => {
                "all replication slots are in use: drop slots ciuf left behind and nothing uses (SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active AND slot_name LIKE 'ciuf\\_%'), after checking no other tool needs them, or raise max_replication_slots".to_string()
            }
            "3D000" => "check the database name in the URL".to_string(),
            _ => return None,
        },
    )
}
