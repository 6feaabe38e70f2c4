//! TLS for the database connections: `sslmode` with libpq's five choices, a rustls
//! client configuration per mode with the certificate verifiers those modes need, and
//! handshake errors explained in terms of `sslmode` and `sslrootcert`. PostgreSQL and
//! MySQL/MariaDB share it; each says which ALPN protocol (if any) it offers.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// How much TLS to insist on, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS when the server offers it, without verifying the certificate; plain otherwise.
    #[default]
    Prefer,
    /// TLS, without verifying the certificate.
    Require,
    /// TLS, with the certificate chain verified against `sslrootcert` but no host name check.
    VerifyCa,
    /// TLS, with the chain verified and the certificate matching the host.
    VerifyFull,
}

impl SslMode {
    /// Parses an `sslmode` URL parameter value.
    pub fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// Whether the server certificate is checked against `sslrootcert`.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// What a TLS setup depends on: the mode, the host to verify, the CA file and the ALPN.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsParams<'a> {
    /// The TLS mode.
    pub(crate) sslmode: SslMode,
    /// The host name or address from the URL (only verify-full checks the certificate against it).
    pub(crate) host: &'a str,
    /// The CA file for the verify modes; `None` when the URL named none and there is no default.
    pub(crate) root_cert: Option<&'a Path>,
    /// The ALPN protocols to offer, such as PostgreSQL's `postgresql`; empty for none.
    pub(crate) alpn: &'a [&'a [u8]],
}

/// The client configuration for `p.sslmode`; `Err` is the one-line cause and fix.
pub(crate) fn client_config(p: &TlsParams<'_>) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algs = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e} (report this as a logship bug)"))?;
    let mut config = match p.sslmode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainVerifier { roots: None, algs }))
            .with_no_client_auth(),
        SslMode::VerifyCa => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainVerifier {
                roots: Some(load_roots(p)?),
                algs,
            }))
            .with_no_client_auth(),
        SslMode::VerifyFull => builder
            .with_root_certificates(load_roots(p)?)
            .with_no_client_auth(),
    };
    config.alpn_protocols = p.alpn.iter().map(|proto| proto.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The name to verify the certificate against; only verify-full looks at it.
pub(crate) fn server_name(p: &TlsParams<'_>) -> Result<ServerName<'static>, String> {
    match ServerName::try_from(p.host.to_string()) {
        Ok(name) => Ok(name),
        Err(_) if p.sslmode != SslMode::VerifyFull => {
            Ok(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
        }
        Err(e) => Err(format!(
            "host \"{}\" is not a valid TLS server name: {e} (use a DNS name or IP address, or sslmode=verify-ca)",
            p.host
        )),
    }
}

/// Explains a failed handshake in terms of sslmode and sslrootcert.
pub(crate) fn describe_error(err: &rustls::Error, p: &TlsParams<'_>) -> String {
    let root = p
        .root_cert
        .map_or_else(|| "(none)".into(), |path| path.display().to_string());
    match err {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!(
            "the server certificate is not signed by a CA in sslrootcert {} \
             (set sslrootcert to the CA that signed the server certificate, or use sslmode=require to skip verification)",
            root
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server certificate is not valid for host \"{}\" \
             (connect with a host name the certificate lists, or use sslmode=verify-ca to skip the host name check)",
            p.host
        ),
        other => format!(
            "TLS handshake failed: {other} (check sslmode={} and sslrootcert {} against the server's certificate)",
            p.sslmode, root
        ),
    }
}

fn load_roots(p: &TlsParams<'_>) -> Result<RootCertStore, String> {
    let Some(path) = p.root_cert else {
        return Err(format!(
            "sslmode={} needs a CA certificate to verify the server with \
             (set sslrootcert=PATH in the source URL, or use sslmode=require)",
            p.sslmode
        ));
    };
    let unreadable = |reason: String| {
        format!(
            "cannot read sslrootcert {}: {reason} (set sslrootcert in the source URL to the CA certificate file, or use sslmode=require)",
            path.display()
        )
    };
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| unreadable(e.to_string()))?;
    for cert in certs {
        let cert = cert.map_err(|e| unreadable(e.to_string()))?;
        roots.add(cert).map_err(|e| unreadable(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(unreadable("it holds no PEM certificate".to_string()));
    }
    Ok(roots)
}

/// The verifier for sslmode prefer/require (`roots: None`: any certificate, as
/// libpq does) and verify-ca (the chain must lead to a root in sslrootcert; the
/// host name is not checked). The handshake signature is always checked.
#[derive(Debug)]
struct ChainVerifier {
    roots: Option<RootCertStore>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algs.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// A plain or TLS connection to a server, read and written the same way.
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
