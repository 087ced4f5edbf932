//! `sqlite://` URLs.
//!
//! - `sqlite://./app.db`, `sqlite://app.db`: a path relative to the working directory;
//! - `sqlite:///app.db`, `sqlite:///./data/app.db`: SQLAlchemy's form, the path after
//!   the third slash (relative);
//! - `sqlite:////abs/path.db`: SQLAlchemy's absolute form;
//! - `sqlite:///abs/path.db` where `abs/path.db` does not exist but `/abs/path.db` does:
//!   that absolute file (the form people also write for absolute paths);
//! - `sqlite:///:memory:`, `sqlite://` (SQLAlchemy): a private in-memory database, which no
//!   other connection can write to (the engine is then simply in-memory).
//!
//! A `?query` part is ignored; `sqlite+driver://` (SQLAlchemy's driver suffix) is
//! accepted.

use std::path::{Path, PathBuf};

use super::error::SqliteError;

/// What a `sqlite://` URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqliteTarget {
    /// A database file.
    File(PathBuf),
    /// `:memory:`.
    Memory,
}

/// Parses a `sqlite://` (or `sqlite+driver://`) URL.
pub fn parse_url(url: &str) -> Result<SqliteTarget, SqliteError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| SqliteError::Config(format!("{url:?} is not a sqlite:// URL (try sqlite://./app.db)")))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "sqlite" && !scheme.starts_with("sqlite+") {
        return Err(SqliteError::Config(format!("{url:?} is not a sqlite:// URL")));
    }
    let rest = rest.split_once('?').map_or(rest, |(p, _)| p);
    let path = match rest.strip_prefix('/') {
        // sqlite:///<path>: SQLAlchemy; sqlite:////abs → "/abs".
        Some(after) => after,
        None => rest,
    };
    if path == ":memory:" || path.is_empty() {
        return Ok(SqliteTarget::Memory);
    }
    let relative = Path::new(path);
    if rest.starts_with('/') && relative.is_relative() && !relative.exists() {
        let absolute = Path::new("/").join(relative);
        if absolute.exists() {
            return Ok(SqliteTarget::File(absolute));
        }
    }
    Ok(SqliteTarget::File(relative.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        let file = |p: &str| SqliteTarget::File(PathBuf::from(p));
        assert_eq!(parse_url("sqlite://./app.db").unwrap(), file("./app.db"));
        assert_eq!(parse_url("sqlite:///./local.db").unwrap(), file("./local.db"));
        assert_eq!(parse_url("sqlite:///app.db?mode=rw").unwrap(), file("app.db"));
        assert_eq!(parse_url("sqlite:////abs/path.db").unwrap(), file("/abs/path.db"));
        assert_eq!(parse_url("sqlite+pysqlite:///app.db").unwrap(), file("app.db"));
        // `/tmp` exists where `tmp` (relative) does not: the absolute reading.
        let dir = std::env::temp_dir();
        let name = dir.join(format!("ciuf-url-{}.db", std::process::id()));
        std::fs::write(&name, b"").unwrap();
        let url = format!("sqlite://{}", name.display());
        assert_eq!(parse_url(&url).unwrap(), SqliteTarget::File(name.clone()));
        std::fs::remove_file(&name).unwrap();
        assert_eq!(parse_url("sqlite:///:memory:").unwrap(), SqliteTarget::Memory);
        assert_eq!(parse_url("sqlite://:memory:").unwrap(), SqliteTarget::Memory);
        assert_eq!(parse_url("sqlite://").unwrap(), SqliteTarget::Memory);
        assert!(parse_url("postgresql://x").is_err());
    }
}
