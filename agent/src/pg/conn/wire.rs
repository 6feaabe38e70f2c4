//! Message framing over the transport: a read buffer that only ever yields
//! complete backend messages (so reads are cancel-safe), and a write buffer.

use std::io;

use bytes::{Buf, BytesMut};
use postgres_protocol::message::backend::{Header, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::Kind;
use crate::tls::Transport;

/// CopyBothResponse, which `postgres_protocol` does not decode.
const COPY_BOTH_RESPONSE_TAG: u8 = b'W';

/// No backend message may exceed PostgreSQL's own allocation limit (`MaxAllocSize`, 1 GiB).
const MAX_MESSAGE_LEN: usize = 1 << 30;

/// Read in chunks at least this large, so a busy stream needs few syscalls.
const READ_CHUNK: usize = 128 * 1024;

/// A backend message.
pub(crate) enum Backend {
    Message(Message),
    CopyBothResponse,
}

/// The framed connection.
pub(crate) struct Wire {
    io: Transport,
    rbuf: BytesMut,
    wbuf: BytesMut,
    unflushed: bool,
}

impl Wire {
    pub(crate) fn new(io: Transport) -> Wire {
        Wire {
            io,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::new(),
            unflushed: false,
        }
    }

    /// The buffer to encode frontend messages into; sent by the next [`Wire::flush`].
    pub(crate) fn out(&mut self) -> &mut BytesMut {
        self.unflushed = true;
        &mut self.wbuf
    }

    /// Whether encoded messages still wait to be sent.
    pub(crate) fn has_unflushed(&self) -> bool {
        self.unflushed
    }

    /// Sends everything encoded so far. Cancel-safe: what was written leaves the
    /// buffer, so a later call sends only the rest.
    pub(crate) async fn flush(&mut self) -> Result<(), Kind> {
        self.io
            .write_all_buf(&mut self.wbuf)
            .await
            .map_err(io_kind)?;
        self.io.flush().await.map_err(io_kind)?;
        self.unflushed = false;
        Ok(())
    }

    /// The next complete message already buffered, without reading.
    pub(crate) fn try_read(&mut self) -> Result<Option<Backend>, Kind> {
        let Some(header) = Header::parse(&self.rbuf).map_err(protocol)? else {
            return Ok(None);
        };
        let total = usize::try_from(header.len())
            .ok()
            .filter(|len| *len <= MAX_MESSAGE_LEN)
            .map(|len| len + 1)
            .ok_or_else(|| {
                Kind::Protocol(format!(
                    "message '{}' claims {} bytes",
                    char::from(header.tag()),
                    header.len()
                ))
            })?;
        if self.rbuf.len() < total {
            self.rbuf.reserve(total - self.rbuf.len());
            return Ok(None);
        }
        if header.tag() == COPY_BOTH_RESPONSE_TAG {
            // Its body (overall format, column formats) carries nothing we use.
            self.rbuf.advance(total);
            return Ok(Some(Backend::CopyBothResponse));
        }
        match Message::parse(&mut self.rbuf).map_err(protocol)? {
            Some(message) => Ok(Some(Backend::Message(message))),
            None => Ok(None),
        }
    }

    /// The next message, reading as needed. Cancel-safe: bytes read stay buffered
    /// and only complete messages are consumed.
    pub(crate) async fn read(&mut self) -> Result<Backend, Kind> {
        loop {
            if let Some(message) = self.try_read()? {
                return Ok(message);
            }
            self.fill().await?;
        }
    }

    /// Reads whatever the server has sent next into the buffer. Cancel-safe.
    pub(crate) async fn fill(&mut self) -> Result<(), Kind> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        match self.io.read_buf(&mut self.rbuf).await {
            Ok(0) => Err(Kind::Closed),
            Ok(_) => Ok(()),
            Err(e) => Err(io_kind(e)),
        }
    }

    /// Tells the server goodbye and closes the socket; errors do not matter any more.
    pub(crate) async fn terminate(mut self) {
        postgres_protocol::message::frontend::terminate(self.out());
        if self.flush().await.is_ok() {
            let _ = self.io.shutdown().await;
        }
    }
}

fn io_kind(e: io::Error) -> Kind {
    match e.kind() {
        io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe => Kind::Closed,
        _ => Kind::Io(e),
    }
}

fn protocol(e: io::Error) -> Kind {
    Kind::Protocol(e.to_string())
}
