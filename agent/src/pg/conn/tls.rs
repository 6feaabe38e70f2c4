//! TLS for the PostgreSQL connection: a rustls client configuration per `sslmode`,
//! with the certificate verifiers libpq's modes need, and errors that name the fix.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::options::{ConnectOptions, SslMode};

/// The ALPN protocol name PostgreSQL 17+ expects; older servers ignore it.
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// The client configuration for `opts.sslmode()`; `Err` is the one-line cause and fix.
pub(crate) fn client_config(opts: &ConnectOptions) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let algs = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e} (report this as a logship bug)"))?;
    let mut config = match opts.sslmode() {
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainVerifier { roots: None, algs }))
            .with_no_client_auth(),
        SslMode::VerifyCa => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainVerifier {
                roots: Some(load_roots(&opts.root_cert_path())?),
                algs,
            }))
            .with_no_client_auth(),
        SslMode::VerifyFull => builder
            .with_root_certificates(load_roots(&opts.root_cert_path())?)
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(Arc::new(config))
}

/// The name to verify the certificate against; only verify-full looks at it.
pub(crate) fn server_name(opts: &ConnectOptions) -> Result<ServerName<'static>, String> {
    match ServerName::try_from(opts.host().to_string()) {
        Ok(name) => Ok(name),
        Err(_) if opts.sslmode() != SslMode::VerifyFull => {
            Ok(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
        }
        Err(e) => Err(format!(
            "host \"{}\" is not a valid TLS server name: {e} (use a DNS name or IP address, or sslmode=verify-ca)",
            opts.host()
        )),
    }
}

/// Explains a failed handshake in terms of sslmode and sslrootcert.
pub(crate) fn describe_error(err: &rustls::Error, opts: &ConnectOptions) -> String {
    let root = opts.root_cert_path();
    match err {
        rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer | CertificateError::BadSignature,
        ) => format!(
            "the server certificate is not signed by a CA in sslrootcert {} \
             (set sslrootcert to the CA that signed the server certificate, or use sslmode=require to skip verification)",
            root.display()
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "the server certificate is not valid for host \"{}\" \
             (connect with a host name the certificate lists, or use sslmode=verify-ca to skip the host name check)",
            opts.host()
        ),
        other => format!(
            "TLS handshake failed: {other} (check sslmode={} and sslrootcert {} against the server's certificate)",
            opts.sslmode(),
            root.display()
        ),
    }
}

fn load_roots(path: &Path) -> Result<RootCertStore, String> {
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
