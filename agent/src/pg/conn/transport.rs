//! The byte stream under the protocol: TCP to the first address that answers,
//! then TLS when `sslmode` and the server's answer to SSLRequest call for it.

use std::io;
use std::net::IpAddr;

use bytes::BytesMut;
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::error::Kind;
use super::options::{ConnectOptions, SslMode};
use crate::tls::{self, TlsParams, Transport};

/// The ALPN protocol name PostgreSQL 17+ expects; older servers ignore it.
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// An open transport and our own address as the server sees it (for pg_hba.conf advice).
pub(crate) struct Opened {
    pub(crate) transport: Transport,
    pub(crate) local_ip: Option<IpAddr>,
}

/// Connects and negotiates TLS as `opts.sslmode()` says.
pub(crate) async fn open(opts: &ConnectOptions) -> Result<Opened, Kind> {
    // Build the TLS setup first, so a bad sslrootcert fails before any network traffic.
    let root_cert = opts.root_cert_path();
    let params = tls_params(opts, &root_cert);
    let tls = match opts.sslmode() {
        SslMode::Disable => None,
        _ => Some((
            tls::client_config(&params).map_err(Kind::Tls)?,
            tls::server_name(&params).map_err(Kind::Tls)?,
        )),
    };
    let mut tcp = connect_tcp(opts.host(), opts.port()).await?;
    let local_ip = tcp.local_addr().ok().map(|a| a.ip());
    let Some((config, name)) = tls else {
        return Ok(Opened {
            transport: Transport::Plain(tcp),
            local_ip,
        });
    };
    let mut request = BytesMut::new();
    frontend::ssl_request(&mut request);
    tcp.write_all(&request).await.map_err(Kind::Io)?;
    let answer = tcp.read_u8().await.map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => Kind::Closed,
        _ => Kind::Io(e),
    })?;
    let transport = match answer {
        b'S' => {
            let stream = TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| tls_error(e, &params))?;
            Transport::Tls(Box::new(stream))
        }
        b'N' if opts.sslmode() == SslMode::Prefer => Transport::Plain(tcp),
        b'N' => {
            return Err(Kind::TlsRefused {
                sslmode: opts.sslmode().to_string(),
            });
        }
        other => {
            return Err(Kind::Protocol(format!(
                "answer 0x{other:02X} to SSLRequest, expected 'S' or 'N'"
            )));
        }
    };
    Ok(Opened {
        transport,
        local_ip,
    })
}

/// Tries every address the host resolves to, as libpq does, and reports the last failure.
async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, Kind> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| Kind::Resolve {
            host: host.to_string(),
            source,
        })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                // Status updates are small and latency matters for synchronous replication.
                tcp.set_nodelay(true).map_err(Kind::Io)?;
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => Kind::Unreachable(e),
        None => Kind::Resolve {
            host: host.to_string(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses found"),
        },
    })
}

/// The TLS settings of `opts`, with PostgreSQL's ALPN name.
fn tls_params<'a>(opts: &'a ConnectOptions, root_cert: &'a std::path::Path) -> TlsParams<'a> {
    TlsParams {
        sslmode: opts.sslmode(),
        host: opts.host(),
        root_cert: Some(root_cert),
        alpn: &[ALPN_POSTGRESQL],
    }
}

fn tls_error(err: io::Error, params: &TlsParams<'_>) -> Kind {
    let rustls_error = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(e) => Kind::Tls(tls::describe_error(e, params)),
        None if err.kind() == io::ErrorKind::UnexpectedEof => Kind::Closed,
        None => Kind::Io(err),
    }
}
