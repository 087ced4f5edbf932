//! Database URLs and source options.
//!
//! Accepted: `postgresql://`, `postgres://`, and SQLAlchemy's `postgresql+driver://`
//! (the driver part is ignored), with the parameters libpq and tokio-postgres know
//! (`sslmode`, `connect_timeout`, `application_name`, …).

use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;

use super::error::PgError;
use super::tls::{SslMode, Tls};
use super::wire::Target;

/// How a PostgreSQL source replicates.
#[derive(Debug, Clone, Default)]
pub struct PostgresOptions {
    /// The replication slot. Default: a name of ciuf's own, created at start and
    /// dropped on a clean shutdown.
    pub slot: Option<String>,
    /// The publication. Default: one of ciuf's own, created for the tables the views
    /// name and dropped on a clean shutdown. A given publication is used as it is, and
    /// must already contain the tables.
    pub publication: Option<String>,
}

/// A parsed URL: what tokio-postgres needs for ordinary queries, and what the
/// replication client needs.
#[derive(Debug, Clone)]
pub struct Url {
    /// For tokio-postgres.
    pub config: tokio_postgres::Config,
    /// For the replication client.
    pub target: Target,
}

impl Url {
    /// Parses a PostgreSQL URL. Errors never repeat the password.
    pub fn parse(url: &str) -> Result<Url, PgError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| PgError::Config("a PostgreSQL URL starts with postgresql://".into()))?;
        let base = scheme.split('+').next().unwrap_or(scheme).to_ascii_lowercase();
        if base != "postgresql" && base != "postgres" {
            return Err(PgError::Config(format!("{scheme}:// is not a PostgreSQL URL")));
        }
        // sslmode and sslrootcert are ciuf's to handle (tokio-postgres knows neither
        // verify-ca/verify-full nor sslrootcert).
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut tls = Tls::default();
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => tls.mode = SslMode::parse(&percent_decode(v))?,
                "sslrootcert" => tls.root_cert = Some(percent_decode(v).into()),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() { location.to_string() } else { format!("{location}?{}", kept.join("&")) };
        let mut config = tokio_postgres::Config::from_str(&format!("postgresql://{rest}"))
            .map_err(|e| PgError::Config(format!("invalid PostgreSQL URL ({})", redact(&e.to_string()))))?;
        let user = match config.get_user() {
            Some(u) => u.to_string(),
            None => {
                let u = std::env::var("USER").unwrap_or_else(|_| "postgres".into());
                config.user(&u);
                u
            }
        };
        if config.get_dbname().is_none() {
            config.dbname(&user);
        }
        if config.get_application_name().is_none() {
            config.application_name("ciuf");
        }
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(_) => {
                return Err(PgError::Config("Unix-socket hosts are not supported yet; use host=127.0.0.1".into()));
            }
            None => {
                config.host("localhost");
                "localhost".to_string()
            }
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        config.ssl_mode(match tls.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let target = Target {
            host,
            port,
            user,
            password: config.get_password().map(<[u8]>::to_vec),
            dbname: config.get_dbname().unwrap_or_default().to_string(),
            connect_timeout: config.get_connect_timeout().copied().unwrap_or(Duration::from_secs(10)),
            tls: tls.client_config()?,
            tls_required: tls.mode.required(),
        };
        Ok(Url { config, target })
    }
}

/// `%XX` escapes decoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = if bytes[i] == b'%' && i + 2 < bytes.len() {
            std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        } else {
            None
        };
        if let Some(v) = escaped {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What identifies the database at `url` for a state directory: role, host, port and
/// database, never the password (`postgresql://app@db.local:5432/shop`).
pub fn identity(url: &str) -> Result<String, PgError> {
    let t = Url::parse(url)?.target;
    Ok(format!("postgresql://{}@{}:{}/{}", t.user, t.host, t.port, t.dbname))
}

/// `text` with anything after `password=` or between `:` and `@` hidden.
fn redact(text: &str) -> String {
    let mut out = text.to_string();
    if let Some(i) = out.find("password=") {
        let end = out[i..].find([' ', '&']).map_or(out.len(), |e| i + e);
        out.replace_range(i + 9..end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_every_spelling() {
        for url in [
            "postgresql://app:secret@127.0.0.1:5433/shop",
            "postgres://app:secret@127.0.0.1:5433/shop",
            "postgresql+psycopg://app:secret@127.0.0.1:5433/shop",
        ] {
            let u = Url::parse(url).unwrap();
            assert_eq!((u.target.host.as_str(), u.target.port, u.target.user.as_str()), ("127.0.0.1", 5433, "app"));
            assert_eq!(u.target.dbname, "shop");
            assert_eq!(u.target.password.as_deref(), Some(&b"secret"[..]));
        }
        assert!(Url::parse("mysql://x").is_err());
        let u = Url::parse("postgresql://a:b@h/db?sslmode=require&application_name=x").unwrap();
        assert!(u.target.tls.is_some() && u.target.tls_required);
        let u = Url::parse("postgresql://a:b@h/db?sslmode=disable").unwrap();
        assert!(u.target.tls.is_none());
        let err = Url::parse("postgresql://a:b@h/db?sslmode=verify-full&sslrootcert=%2Fnope.pem").unwrap_err();
        assert!(err.to_string().contains("/nope.pem"), "{err}");
        let err = Url::parse("postgresql://app:secret@host:notaport/db").unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }
}
