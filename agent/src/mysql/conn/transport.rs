//! The byte stream under the protocol: TCP to the first address that answers, TLS
//! after the SSLRequest when `sslmode` and the server's greeting call for it, and
//! cancel-safe packet framing on top.

use std::io;

use bytes::{Buf, BytesMut};
use logship_protocol::mysql::{Packet, PacketDecoder, encode_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::error::Kind;
use super::options::ConnectOptions;
use crate::tls::{self, TlsParams, Transport};

/// How much to ask the socket for at least per read: a large read keeps a fast dump cheap.
const READ_CHUNK: usize = 256 * 1024;

/// The TLS settings of `opts`; MySQL and MariaDB offer no ALPN protocol.
pub(crate) fn tls_params(opts: &ConnectOptions) -> TlsParams<'_> {
    TlsParams {
        sslmode: opts.sslmode(),
        host: opts.host(),
        root_cert: opts.sslrootcert(),
        alpn: &[],
    }
}

/// Tries every address the host resolves to, and reports the last failure.
pub(crate) async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, Kind> {
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
                // Semi-sync acknowledgements are small and a primary waits for them.
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

/// Runs the TLS handshake on `tcp`, with errors explained in terms of sslmode and sslrootcert.
pub(crate) async fn upgrade(tcp: TcpStream, opts: &ConnectOptions) -> Result<Transport, Kind> {
    let params = tls_params(opts);
    let config = tls::client_config(&params).map_err(Kind::Tls)?;
    let name = tls::server_name(&params).map_err(Kind::Tls)?;
    let stream = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| tls_error(e, &params))?;
    Ok(Transport::Tls(Box::new(stream)))
}

/// Checks the TLS setup (a readable sslrootcert, a valid name) before any network traffic.
pub(crate) fn check_tls_setup(opts: &ConnectOptions) -> Result<(), Kind> {
    let params = tls_params(opts);
    tls::client_config(&params).map_err(Kind::Tls)?;
    tls::server_name(&params).map_err(Kind::Tls)?;
    Ok(())
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

/// Packets over a transport: reads are cancel-safe, writes are buffered until `flush`.
pub(crate) struct Wire {
    io: Transport,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: PacketDecoder,
}

impl Wire {
    /// Frames `io`, refusing logical payloads larger than `max_payload`.
    pub(crate) fn new(io: Transport, max_payload: usize) -> Wire {
        Wire {
            io,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::new(),
            decoder: PacketDecoder::new(max_payload),
        }
    }

    /// Raises the payload limit (a larger `max_allowed_packet`); only between packets.
    pub(crate) fn set_max_payload(&mut self, max_payload: usize) {
        if max_payload > self.decoder.max_payload() {
            self.decoder = PacketDecoder::new(max_payload);
        }
    }

    /// The next logical payload. Cancel-safe: bytes already read stay buffered in `self`,
    /// and the decoder keeps the fragments of a split payload between calls.
    pub(crate) async fn read(&mut self) -> Result<Packet, Kind> {
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.rbuf).map_err(Kind::Packet)? {
                return Ok(packet);
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                self.rbuf.reserve(READ_CHUNK);
            }
            let n = self.io.read_buf(&mut self.rbuf).await.map_err(io_kind)?;
            if n == 0 {
                return Err(Kind::Closed);
            }
        }
    }

    /// Queues `payload` as packets starting at sequence id `seq`.
    pub(crate) fn send(&mut self, seq: u8, payload: &[u8]) {
        encode_packet(seq, payload, &mut self.wbuf);
    }

    /// The write buffer, for encoders that append whole packets themselves.
    pub(crate) fn out(&mut self) -> &mut BytesMut {
        &mut self.wbuf
    }

    /// Writes everything queued. If cancelled, what was not written yet stays queued.
    pub(crate) async fn flush(&mut self) -> Result<(), Kind> {
        while !self.wbuf.is_empty() {
            let n = self.io.write(&self.wbuf).await.map_err(io_kind)?;
            if n == 0 {
                return Err(Kind::Closed);
            }
            self.wbuf.advance(n);
        }
        self.io.flush().await.map_err(io_kind)
    }

    /// Whether bytes beyond the packets decoded so far have arrived (none may before TLS).
    pub(crate) fn has_buffered(&self) -> bool {
        !self.rbuf.is_empty()
    }

    /// The transport back, for the TLS upgrade.
    pub(crate) fn into_transport(self) -> Transport {
        self.io
    }

    /// Closes the write side politely, ignoring errors (the server may be gone).
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.io.shutdown().await;
    }
}

fn io_kind(e: io::Error) -> Kind {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => Kind::Closed,
        _ => Kind::Io(e),
    }
}
