//! A thin PostgreSQL wire client for what tokio-postgres cannot do: a replication
//! connection (`replication=database`), its simple-query commands
//! (`CREATE_REPLICATION_SLOT`, `START_REPLICATION`) and the CopyBoth stream that
//! follows, with standby status updates going back.
//!
//! Framing and authentication (cleartext, MD5, SCRAM-SHA-256) use `postgres-protocol`,
//! the message codec tokio-postgres itself is built on. Ordinary queries (catalog,
//! COPY of the snapshot) go through tokio-postgres; only the replication conversation
//! is here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use postgres_protocol::message::backend::{ErrorFields, Message};
use postgres_protocol::message::frontend;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::{PgError, ServerError, hint_for};

type Result<T> = std::result::Result<T, PgError>;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Role.
    pub user: String,
    /// Password, if any (never shown).
    pub password: Option<Vec<u8>>,
    /// Database.
    pub dbname: String,
    /// How long to wait for the TCP connection.
    pub connect_timeout: Duration,
    /// TLS, unless sslmode=disable.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Whether a server without TLS is refused.
    pub tls_required: bool,
}

impl Target {
    fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Microseconds between 1970-01-01 and 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// Now, in PostgreSQL's microseconds since 2000-01-01.
pub fn pg_now() -> i64 {
    let us = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
    us - PG_EPOCH_OFFSET_US
}

/// A message of the replication stream (inside CopyData).
#[derive(Debug)]
pub enum Replication {
    /// WAL data: one pgoutput message.
    XLogData {
        /// The pgoutput message.
        data: Bytes,
    },
    /// The server's keepalive; `reply` asks for a status update at once.
    Keepalive {
        /// The server's current end of WAL.
        wal_end: u64,
        /// Whether a reply is requested.
        reply: bool,
    },
    /// The server ended the stream.
    Done,
}

/// A byte stream: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// One connection speaking the replication protocol.
pub struct WireConnection {
    stream: Box<dyn Stream>,
    read: BytesMut,
    write: BytesMut,
    target: String,
}

impl std::fmt::Debug for WireConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireConnection").field("target", &self.target).finish_non_exhaustive()
    }
}

/// A backend frame: its tag and the whole frame (header included, as
/// `postgres_protocol` parses it).
struct Frame {
    tag: u8,
    bytes: BytesMut,
}

impl WireConnection {
    /// Connects and authenticates; with `replication`, as a logical replication
    /// connection to the target's database. `params` are further startup parameters
    /// (session settings such as DateStyle and TimeZone).
    pub async fn connect(target: &Target, replication: bool, params: &[(&str, &str)]) -> Result<WireConnection> {
        let address = target.address();
        let stream = tokio::time::timeout(target.connect_timeout, TcpStream::connect(&address))
            .await
            .map_err(|_| PgError::Connect { target: address.clone(), reason: "timed out".into() })?
            .map_err(|e| PgError::Connect { target: address.clone(), reason: e.to_string() })?;
        stream.set_nodelay(true).ok();
        let stream = negotiate_tls(stream, target, &address).await?;
        let mut conn = WireConnection {
            stream,
            read: BytesMut::with_capacity(64 * 1024),
            write: BytesMut::new(),
            target: address,
        };
        let mut startup: Vec<(&str, &str)> = vec![("user", &target.user), ("database", &target.dbname)];
        if replication {
            startup.push(("replication", "database"));
        }
        startup.extend_from_slice(params);
        frontend::startup_message(startup.iter().copied(), &mut conn.write).map_err(protocol)?;
        conn.flush().await?;
        conn.authenticate(target).await?;
        // Parameter statuses and the backend key, up to ReadyForQuery.
        loop {
            let frame = conn.frame().await?;
            match conn.parse(frame)? {
                Some(Message::ReadyForQuery(_)) => return Ok(conn),
                Some(Message::ErrorResponse(body)) => return Err(server_error(body.fields())),
                _ => {}
            }
        }
    }

    async fn authenticate(&mut self, target: &Target) -> Result<()> {
        let password = || {
            target.password.clone().ok_or_else(|| {
                PgError::Config(format!("PostgreSQL asks user {} for a password and the URL has none", target.user))
            })
        };
        let mut scram: Option<ScramSha256> = None;
        loop {
            let frame = self.frame().await?;
            match self.parse(frame)? {
                Some(Message::AuthenticationOk) => return Ok(()),
                Some(Message::AuthenticationCleartextPassword) => {
                    frontend::password_message(&password()?, &mut self.write).map_err(protocol)?;
                    self.flush().await?;
                }
                Some(Message::AuthenticationMd5Password(body)) => {
                    let hash = md5_hash(target.user.as_bytes(), &password()?, body.salt());
                    frontend::password_message(hash.as_bytes(), &mut self.write).map_err(protocol)?;
                    self.flush().await?;
                }
                Some(Message::AuthenticationSasl(body)) => {
                    let mut mechanisms = body.mechanisms();
                    let mut found = false;
                    while let Some(m) = fallible_iterator::FallibleIterator::next(&mut mechanisms).map_err(protocol)? {
                        found |= m == SCRAM_SHA_256;
                    }
                    if !found {
                        return Err(PgError::Protocol(
                            "the server offers no SASL mechanism ciuf supports (SCRAM-SHA-256)".into(),
                        ));
                    }
                    let s = ScramSha256::new(&password()?, ChannelBinding::unsupported());
                    frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut self.write).map_err(protocol)?;
                    self.flush().await?;
                    scram = Some(s);
                }
                Some(Message::AuthenticationSaslContinue(body)) => {
                    let s =
                        scram.as_mut().ok_or_else(|| PgError::Protocol("SASL continue before SASL start".into()))?;
                    s.update(body.data()).map_err(|e| PgError::Protocol(format!("SCRAM: {e}")))?;
                    frontend::sasl_response(s.message(), &mut self.write).map_err(protocol)?;
                    self.flush().await?;
                }
                Some(Message::AuthenticationSaslFinal(body)) => {
                    let s = scram.as_mut().ok_or_else(|| PgError::Protocol("SASL final before SASL start".into()))?;
                    s.finish(body.data())
                        .map_err(|e| PgError::Protocol(format!("SCRAM: the server's proof is wrong: {e}")))?;
                }
                Some(Message::ErrorResponse(body)) => return Err(server_error(body.fields())),
                Some(_) => {
                    return Err(PgError::Protocol(
                        "the server asks for an authentication method ciuf does not support (GSS, SSPI)".into(),
                    ));
                }
                None => {}
            }
        }
    }

    /// Runs one simple-query command and returns its rows as text (NULL as None).
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        frontend::query(sql, &mut self.write).map_err(protocol)?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let frame = self.frame().await?;
            match self.parse(frame)? {
                Some(Message::DataRow(body)) => {
                    let buf = body.buffer();
                    let mut row = Vec::new();
                    let mut ranges = body.ranges();
                    while let Some(r) = fallible_iterator::FallibleIterator::next(&mut ranges).map_err(protocol)? {
                        row.push(r.map(|r| String::from_utf8_lossy(&buf[r]).into_owned()));
                    }
                    rows.push(row);
                }
                Some(Message::ErrorResponse(body)) => error = Some(server_error(body.fields())),
                Some(Message::ReadyForQuery(_)) => {
                    return match error {
                        Some(e) => Err(e),
                        None => Ok(rows),
                    };
                }
                _ => {}
            }
        }
    }

    /// Sends `START_REPLICATION …` and waits for the server to enter CopyBoth mode.
    pub async fn start_replication(&mut self, command: &str) -> Result<()> {
        frontend::query(command, &mut self.write).map_err(protocol)?;
        self.flush().await?;
        loop {
            let frame = self.frame().await?;
            if frame.tag == b'W' {
                return Ok(());
            }
            match self.parse(frame)? {
                Some(Message::ErrorResponse(body)) => return Err(server_error(body.fields())),
                Some(Message::ReadyForQuery(_)) => {
                    return Err(PgError::Protocol("START_REPLICATION ended without streaming".into()));
                }
                _ => {}
            }
        }
    }

    /// The next message of the replication stream.
    pub async fn next_replication(&mut self) -> Result<Replication> {
        loop {
            let frame = self.frame().await?;
            match frame.tag {
                b'd' => {
                    let mut body = frame.bytes.freeze();
                    body.advance(5);
                    if body.is_empty() {
                        return Err(PgError::Protocol("empty CopyData".into()));
                    }
                    match body.get_u8() {
                        b'w' if body.remaining() >= 24 => {
                            // WAL start and end, and the send time: not needed, since
                            // positions come from the Commit messages.
                            body.advance(24);
                            return Ok(Replication::XLogData { data: body });
                        }
                        b'k' if body.remaining() >= 17 => {
                            let wal_end = body.get_u64();
                            let _send_time = body.get_i64();
                            let reply = body.get_u8() == 1;
                            return Ok(Replication::Keepalive { wal_end, reply });
                        }
                        t => return Err(PgError::Protocol(format!("unknown replication message {:?}", t as char))),
                    }
                }
                b'c' => return Ok(Replication::Done),
                _ => match self.parse(frame)? {
                    Some(Message::ErrorResponse(body)) => return Err(server_error(body.fields())),
                    Some(Message::NoticeResponse(_) | Message::ParameterStatus(_)) | None => {}
                    // CommandComplete or ReadyForQuery: the server left CopyBoth mode (it
                    // is shutting down); the stream resumes on a new connection.
                    Some(_) => return Ok(Replication::Done),
                },
            }
        }
    }

    /// Tells the server what has been received (`written`) and applied (`flushed` and
    /// `applied`: the slot may release WAL up to `flushed`).
    pub async fn standby_status(&mut self, written: u64, flushed: u64, applied: u64, reply: bool) -> Result<()> {
        let mut body = BytesMut::with_capacity(34);
        body.put_u8(b'r');
        body.put_u64(written);
        body.put_u64(flushed);
        body.put_u64(applied);
        body.put_i64(pg_now());
        body.put_u8(u8::from(reply));
        let data = frontend::CopyData::new(body.freeze()).map_err(protocol)?;
        data.write(&mut self.write);
        self.flush().await
    }

    /// Ends the session politely.
    pub async fn terminate(mut self) {
        frontend::terminate(&mut self.write);
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    async fn flush(&mut self) -> Result<()> {
        let target = &self.target;
        self.stream
            .write_all(&self.write)
            .await
            .map_err(|e| PgError::Connect { target: target.clone(), reason: e.to_string() })?;
        self.write.clear();
        Ok(())
    }

    async fn frame(&mut self) -> Result<Frame> {
        loop {
            if self.read.len() >= 5 {
                let len = u32::from_be_bytes([self.read[1], self.read[2], self.read[3], self.read[4]]) as usize;
                if len < 4 {
                    return Err(PgError::Protocol(format!("a frame of length {len}")));
                }
                if self.read.len() > len {
                    let tag = self.read[0];
                    let bytes = self.read.split_to(len + 1);
                    return Ok(Frame { tag, bytes });
                }
                self.read.reserve(len + 1 - self.read.len());
            }
            let n = self
                .stream
                .read_buf(&mut self.read)
                .await
                .map_err(|e| PgError::Connect { target: self.target.clone(), reason: e.to_string() })?;
            if n == 0 {
                return Err(PgError::Connect {
                    target: self.target.clone(),
                    reason: "the server closed the connection".into(),
                });
            }
        }
    }

    fn parse(&self, mut frame: Frame) -> Result<Option<Message>> {
        Message::parse(&mut frame.bytes).map_err(protocol)
    }
}

/// SSLRequest, then the TLS handshake if the server accepts (as sslmode asks).
async fn negotiate_tls(mut tcp: TcpStream, target: &Target, address: &str) -> Result<Box<dyn Stream>> {
    let Some(config) = &target.tls else { return Ok(Box::new(tcp)) };
    let io = |e: std::io::Error| PgError::Connect { target: address.to_string(), reason: e.to_string() };
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    tcp.write_all(&request).await.map_err(io)?;
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.map_err(io)?;
    match answer[0] {
        b'S' => {
            let name = super::tls::server_name(&target.host)?;
            let tls = tokio_rustls::TlsConnector::from(Arc::clone(config)).connect(name, tcp).await.map_err(|e| {
                PgError::Connect { target: address.to_string(), reason: format!("TLS handshake failed: {e}") }
            })?;
            Ok(Box::new(tls))
        }
        b'N' if target.tls_required => Err(PgError::Config(format!(
            "the server at {address} does not accept TLS connections, and the URL's sslmode requires TLS"
        ))),
        b'N' => Ok(Box::new(tcp)),
        other => Err(PgError::Protocol(format!("unexpected answer {:?} to SSLRequest", other as char))),
    }
}

fn protocol(e: std::io::Error) -> PgError {
    PgError::Protocol(e.to_string())
}

/// An ErrorResponse as a [`PgError`].
pub fn server_error(mut fields: ErrorFields<'_>) -> PgError {
    let mut code = String::new();
    let mut message = String::new();
    let mut detail = None;
    while let Ok(Some(f)) = fallible_iterator::FallibleIterator::next(&mut fields) {
        let value = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'C' => code = value,
            b'M' => message = value,
            b'D' => detail = Some(value),
            _ => {}
        }
    }
    let hint = hint_for(&code, &message);
    PgError::Server(ServerError { code, message, detail, hint })
}

/// Parses an LSN written as `XXXXXXXX/XXXXXXXX`.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Writes an LSN as PostgreSQL does.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_round_trip() {
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("0/0"), Some(0));
        assert_eq!(parse_lsn("nope"), None);
    }
}
