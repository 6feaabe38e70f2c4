//! Binlog files: the 4-byte magic `\xfebin`, then events back to back.
//!
//! [`BinlogReader`] takes a file's bytes in any pieces and hands back whole,
//! checked events ([`Event`]). While bytes are still arriving (a file being
//! written, a download in progress), an incomplete last event is simply not
//! returned yet: [`BinlogReader::next_event`] says `Ok(None)`. Once the caller
//! knows the input is complete, [`BinlogReader::finish`] reports leftover bytes as
//! truncation, naming the offset where the torn event starts.

use bytes::{Buf, BytesMut};

use super::event::{BinlogError, Event, EventDecoder, EventHeader, HEADER_LEN, MAX_EVENT_SIZE};

/// The first four bytes of every binlog and relay log file.
pub const BINLOG_MAGIC: [u8; 4] = [0xfe, b'b', b'i', b'n'];

/// Reads events out of binlog file bytes, without I/O.
#[derive(Debug)]
pub struct BinlogReader {
    buf: BytesMut,
    /// File offset of `buf[0]`.
    pos: u64,
    /// Whether the magic is still to be checked.
    at_start: bool,
    decoder: EventDecoder,
    /// Once an error is returned, the reader returns it forever.
    failed: Option<BinlogError>,
}

impl Default for BinlogReader {
    fn default() -> BinlogReader {
        BinlogReader::new()
    }
}

impl BinlogReader {
    /// A reader for a whole file, from its magic on.
    pub fn new() -> BinlogReader {
        BinlogReader {
            buf: BytesMut::new(),
            pos: 0,
            at_start: true,
            decoder: EventDecoder::new(),
            failed: None,
        }
    }

    /// A reader for bytes that start at `offset` of a file, an event boundary past
    /// the magic, with `decoder` already holding the file's FORMAT_DESCRIPTION (see
    /// [`EventDecoder::with_format`]).
    pub fn resume(offset: u64, decoder: EventDecoder) -> BinlogReader {
        BinlogReader {
            buf: BytesMut::new(),
            pos: offset,
            at_start: false,
            decoder,
            failed: None,
        }
    }

    /// Appends the file bytes that follow those fed so far.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// The offset of the next byte to decode: the end of the last event returned.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The decoder, holding the file's FORMAT_DESCRIPTION once it has been read.
    pub fn decoder(&self) -> &EventDecoder {
        &self.decoder
    }

    /// The next whole event, or `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event>, BinlogError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        match self.step() {
            Ok(event) => Ok(event),
            Err(err) => {
                self.failed = Some(err.clone());
                self.buf = BytesMut::new();
                Err(err)
            }
        }
    }

    /// Declares the input complete: an error if bytes of an incomplete event (or
    /// magic) are left over.
    pub fn finish(&self) -> Result<(), BinlogError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        if self.at_start {
            if self.buf.len() < BINLOG_MAGIC.len() {
                return Err(BinlogError::Truncated {
                    offset: 0,
                    have: self.buf.len() as u64,
                    need: BINLOG_MAGIC.len() as u64,
                });
            }
            return Ok(());
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let need =
            EventHeader::parse(&self.buf).map_or(HEADER_LEN as u64, |h| u64::from(h.event_size));
        Err(BinlogError::Truncated {
            offset: self.pos,
            have: self.buf.len() as u64,
            need,
        })
    }

    fn step(&mut self) -> Result<Option<Event>, BinlogError> {
        if self.at_start {
            let Some(magic) = self.buf.get(..BINLOG_MAGIC.len()) else {
                // A prefix that is already wrong need not wait for the rest.
                if !BINLOG_MAGIC.starts_with(&self.buf) {
                    return Err(BinlogError::BadMagic {
                        found: self.buf.to_vec(),
                    });
                }
                return Ok(None);
            };
            if magic != BINLOG_MAGIC {
                return Err(BinlogError::BadMagic {
                    found: magic.to_vec(),
                });
            }
            self.buf.advance(BINLOG_MAGIC.len());
            self.pos = BINLOG_MAGIC.len() as u64;
            self.at_start = false;
        }
        let Some(header) = EventHeader::parse(&self.buf) else {
            return Ok(None);
        };
        // Checked before waiting for the body: a corrupt size must not make an
        // incremental reader wait for bytes that will never come.
        if !(HEADER_LEN as u32..=MAX_EVENT_SIZE).contains(&header.event_size) {
            return Err(BinlogError::BadEventSize {
                offset: self.pos,
                size: header.event_size,
                min: HEADER_LEN as u32,
            });
        }
        let size = header.event_size as usize;
        if self.buf.len() < size {
            return Ok(None);
        }
        let raw = self.buf.split_to(size).freeze();
        let offset = self.pos;
        let event = self.decoder.decode(raw, offset)?;
        self.pos += size as u64;
        Ok(Some(event))
    }

    /// Reads a whole file held in memory: every event, or the first error.
    pub fn read_all(bytes: &[u8]) -> Result<Vec<Event>, BinlogError> {
        let mut reader = BinlogReader::new();
        reader.feed(bytes);
        let mut events = Vec::new();
        while let Some(event) = reader.next_event()? {
            events.push(event);
        }
        reader.finish()?;
        Ok(events)
    }
}
