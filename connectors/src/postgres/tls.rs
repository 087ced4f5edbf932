//! TLS for both connections (rustls, with the ring provider), following libpq's
//! `sslmode`:
//!
//! | sslmode | encrypts | checks the certificate chain | checks the host name |
//! |---|---|---|---|
//! | disable | no | — | — |
//! | prefer (default) | if the server offers it | no | no |
//! | require | yes, or fails | no | no |
//! | verify-ca | yes | against `sslrootcert` | no |
//! | verify-full | yes | against `sslrootcert` | yes |
//!
//! As with libpq, `sslrootcert` defaults to `~/.postgresql/root.crt`.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme};

use super::error::PgError;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never encrypt.
    Disable,
    /// Encrypt if the server offers it.
    #[default]
    Prefer,
    /// Encrypt, without checking the certificate.
    Require,
    /// Encrypt, checking the certificate chain.
    VerifyCa,
    /// Encrypt, checking the chain and the host name.
    VerifyFull,
}

impl SslMode {
    /// Parses an `sslmode` value.
    pub fn parse(s: &str) -> Result<SslMode, PgError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(PgError::Config(format!(
                    "unknown sslmode {other:?} (disable, prefer, require, verify-ca or verify-full)"
                )));
            }
        })
    }

    /// Whether a server without TLS must be refused.
    pub fn required(self) -> bool {
        matches!(self, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// The TLS settings of a URL.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// The mode.
    pub mode: SslMode,
    /// The CA file, if given.
    pub root_cert: Option<PathBuf>,
}

impl Tls {
    /// The rustls client configuration for this mode (None when disabled).
    pub fn client_config(&self) -> Result<Option<Arc<ClientConfig>>, PgError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| PgError::Config(format!("TLS: {e}")))?;
        let config = match self.mode {
            SslMode::Disable => return Ok(None),
            SslMode::Prefer | SslMode::Require => {
                builder.dangerous().with_custom_certificate_verifier(Arc::new(NoCheck(provider))).with_no_client_auth()
            }
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = self.roots()?;
                let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| PgError::Config(format!("TLS: {e}")))?;
                let verifier: Arc<dyn ServerCertVerifier> =
                    if self.mode == SslMode::VerifyCa { Arc::new(ChainOnly(webpki)) } else { webpki };
                builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth()
            }
        };
        Ok(Some(Arc::new(config)))
    }

    fn roots(&self) -> Result<RootCertStore, PgError> {
        let path = match &self.root_cert {
            Some(p) => p.clone(),
            None => {
                let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
                let default = home.join(".postgresql/root.crt");
                if !default.exists() {
                    return Err(PgError::Config(
                        "sslmode=verify-ca and verify-full need the server's CA: add sslrootcert=<file> to the URL \
                         (or put it in ~/.postgresql/root.crt)"
                            .into(),
                    ));
                }
                default
            }
        };
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&path)
            .map_err(|e| PgError::Config(format!("cannot read sslrootcert {}: {e}", path.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| PgError::Config(format!("sslrootcert {}: {e}", path.display())))?;
            roots.add(cert).map_err(|e| PgError::Config(format!("sslrootcert {}: {e}", path.display())))?;
        }
        if roots.is_empty() {
            return Err(PgError::Config(format!("sslrootcert {} holds no certificate", path.display())));
        }
        Ok(roots)
    }
}

/// The server name rustls checks (verify-full) and sends (SNI).
pub fn server_name(host: &str) -> Result<ServerName<'static>, PgError> {
    ServerName::try_from(host.to_string())
        .map_err(|_| PgError::Config(format!("{host:?} is not a valid TLS server name")))
}

/// prefer and require: encrypted, but any certificate is accepted (as libpq does).
#[derive(Debug)]
struct NoCheck(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// verify-ca: the chain must lead to the CA; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(TlsError::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(TlsError::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
