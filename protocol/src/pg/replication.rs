//! The CopyData payloads of physical streaming replication
//! (PostgreSQL docs, "Streaming Replication Protocol"). All integers are big-endian.

use bytes::{BufMut, Bytes, BytesMut};

use super::lsn::Lsn;

/// Microseconds between 1970-01-01 and 2000-01-01, PostgreSQL's epoch.
const UNIX_TO_PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A server timestamp: microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's `TimestampTz`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PgTimestamp(i64);

impl PgTimestamp {
    /// From microseconds since the Unix epoch (saturating at the ends of the range).
    pub fn from_unix_micros(micros: i64) -> PgTimestamp {
        PgTimestamp(micros.saturating_sub(UNIX_TO_PG_EPOCH_MICROS))
    }

    /// Microseconds since the Unix epoch (saturating at the ends of the range).
    pub fn to_unix_micros(self) -> i64 {
        self.0.saturating_add(UNIX_TO_PG_EPOCH_MICROS)
    }

    /// From microseconds since PostgreSQL's epoch, as sent on the wire.
    pub fn from_pg_micros(micros: i64) -> PgTimestamp {
        PgTimestamp(micros)
    }

    /// Microseconds since PostgreSQL's epoch, as sent on the wire.
    pub fn as_pg_micros(self) -> i64 {
        self.0
    }
}

/// A chunk of WAL from the server (`XLogData`, tag `w`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XLogData {
    /// The LSN of the first byte of `data`.
    pub wal_start: Lsn,
    /// The server's current end of WAL.
    pub wal_end: Lsn,
    /// The server's clock when it sent this message.
    pub server_time: PgTimestamp,
    /// The WAL bytes, a slice of the received message.
    pub data: Bytes,
}

/// A keepalive from the server (`Primary keepalive message`, tag `k`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrimaryKeepalive {
    /// The server's current end of WAL.
    pub wal_end: Lsn,
    /// The server's clock when it sent this message.
    pub server_time: PgTimestamp,
    /// Whether the server wants a status update right away (or it may disconnect us).
    pub reply_requested: bool,
}

/// A message the server sends inside CopyData while streaming.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicationMessage {
    /// WAL bytes.
    XLogData(XLogData),
    /// A keepalive.
    Keepalive(PrimaryKeepalive),
}

/// A CopyData body that is not a replication message this client understands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationMessageError {
    /// The body is empty, so it has no tag.
    #[error(
        "empty replication message: the server sent a CopyData with no body \
         (is the peer a PostgreSQL server in physical replication mode?)"
    )]
    Empty,
    /// The tag byte is neither `w` nor `k`.
    #[error(
        "unknown replication message tag 0x{tag:02X}: expected 'w' (XLogData) or 'k' \
         (keepalive) (is the peer a PostgreSQL server in physical replication mode?)"
    )]
    UnknownTag {
        /// The unexpected tag byte.
        tag: u8,
    },
    /// The body is shorter than its fixed fields.
    #[error(
        "truncated {kind} message: {actual} bytes, at least {needed} needed \
         (the connection is corrupt; reconnect)"
    )]
    Short {
        /// Which message it was.
        kind: &'static str,
        /// The body's length, tag included.
        actual: usize,
        /// The minimum length of that message, tag included.
        needed: usize,
    },
}

const XLOG_DATA_HEADER_LEN: usize = 1 + 8 + 8 + 8;
const KEEPALIVE_LEN: usize = 1 + 8 + 8 + 1;

impl ReplicationMessage {
    /// Parses one whole CopyData body; `XLogData::data` shares `payload`'s buffer.
    pub fn parse(payload: Bytes) -> Result<ReplicationMessage, ReplicationMessageError> {
        let short = |kind, needed| ReplicationMessageError::Short {
            kind,
            actual: payload.len(),
            needed,
        };
        match payload.first().copied() {
            None => Err(ReplicationMessageError::Empty),
            Some(b'w') => {
                let mut fields = Fields(payload.get(1..XLOG_DATA_HEADER_LEN).unwrap_or(&[]));
                let (Some(start), Some(end), Some(time)) =
                    (fields.u64(), fields.u64(), fields.i64())
                else {
                    return Err(short("XLogData", XLOG_DATA_HEADER_LEN));
                };
                Ok(ReplicationMessage::XLogData(XLogData {
                    wal_start: Lsn::new(start),
                    wal_end: Lsn::new(end),
                    server_time: PgTimestamp::from_pg_micros(time),
                    data: payload.slice(XLOG_DATA_HEADER_LEN..),
                }))
            }
            Some(b'k') => {
                let mut fields = Fields(payload.get(1..KEEPALIVE_LEN).unwrap_or(&[]));
                let (Some(end), Some(time), Some(reply)) =
                    (fields.u64(), fields.i64(), fields.u8())
                else {
                    return Err(short("keepalive", KEEPALIVE_LEN));
                };
                Ok(ReplicationMessage::Keepalive(PrimaryKeepalive {
                    wal_end: Lsn::new(end),
                    server_time: PgTimestamp::from_pg_micros(time),
                    reply_requested: reply != 0,
                }))
            }
            Some(tag) => Err(ReplicationMessageError::UnknownTag { tag }),
        }
    }
}

/// Reads big-endian fields off the front of a slice without ever panicking.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn u64(&mut self) -> Option<u64> {
        let (head, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(u64::from_be_bytes(*head))
    }

    fn i64(&mut self) -> Option<i64> {
        let (head, rest) = self.0.split_first_chunk::<8>()?;
        self.0 = rest;
        Some(i64::from_be_bytes(*head))
    }

    fn u8(&mut self) -> Option<u8> {
        let (&head, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(head)
    }
}

impl XLogData {
    /// Appends this message as a CopyData body, as a server would send it.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(XLOG_DATA_HEADER_LEN + self.data.len());
        buf.put_u8(b'w');
        buf.put_u64(self.wal_start.as_u64());
        buf.put_u64(self.wal_end.as_u64());
        buf.put_i64(self.server_time.as_pg_micros());
        buf.put_slice(&self.data);
    }
}

impl PrimaryKeepalive {
    /// Appends this message as a CopyData body, as a server would send it.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(KEEPALIVE_LEN);
        buf.put_u8(b'k');
        buf.put_u64(self.wal_end.as_u64());
        buf.put_i64(self.server_time.as_pg_micros());
        buf.put_u8(u8::from(self.reply_requested));
    }
}

/// The standby's progress report (`Standby status update`, tag `r`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandbyStatusUpdate {
    /// The last WAL byte + 1 received.
    pub write: Lsn,
    /// The last WAL byte + 1 made durable; this is what moves the slot.
    pub flush: Lsn,
    /// The last WAL byte + 1 applied; an archiver reports its flush position here.
    pub apply: Lsn,
    /// The client's clock when it sent this message.
    pub client_time: PgTimestamp,
    /// Whether the server should reply right away with a keepalive.
    pub reply_requested: bool,
}

impl StandbyStatusUpdate {
    /// Appends this message as a CopyData body.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.reserve(1 + 8 * 4 + 1);
        buf.put_u8(b'r');
        buf.put_u64(self.write.as_u64());
        buf.put_u64(self.flush.as_u64());
        buf.put_u64(self.apply.as_u64());
        buf.put_i64(self.client_time.as_pg_micros());
        buf.put_u8(u8::from(self.reply_requested));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn timestamps_convert_between_epochs() {
        let pg_epoch = PgTimestamp::from_unix_micros(946_684_800_000_000);
        assert_eq!(pg_epoch.as_pg_micros(), 0);
        assert_eq!(
            PgTimestamp::from_pg_micros(-1).to_unix_micros(),
            946_684_799_999_999
        );
        assert_eq!(
            PgTimestamp::from_unix_micros(i64::MIN).as_pg_micros(),
            i64::MIN
        );
        assert_eq!(
            PgTimestamp::from_pg_micros(i64::MAX).to_unix_micros(),
            i64::MAX
        );
    }

    #[test]
    fn parses_xlog_data_written_from_the_protocol_doc() {
        #[rustfmt::skip]
        let raw: &[u8] = &[
            b'w',
            0x00, 0x00, 0x00, 0x00, 0x01, 0x6B, 0x37, 0x48, // start 0/16B3748
            0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x20, // end 1/20
            0x00, 0x02, 0xE6, 0x4A, 0x6C, 0x6E, 0x40, 0x00, // 2026-ish, in µs since 2000
            0xDE, 0xAD, 0xBE, 0xEF,
        ];
        let payload = Bytes::copy_from_slice(raw);
        let ReplicationMessage::XLogData(x) = ReplicationMessage::parse(payload.clone()).unwrap()
        else {
            panic!("expected XLogData");
        };
        assert_eq!(x.wal_start.to_string(), "0/16B3748");
        assert_eq!(x.wal_end.to_string(), "1/20");
        assert_eq!(x.server_time.as_pg_micros(), 0x0002_E64A_6C6E_4000);
        assert_eq!(&x.data[..], &[0xDE, 0xAD, 0xBE, 0xEF]);
        // Zero-copy: the data points into the received buffer.
        assert_eq!(x.data.as_ptr(), payload[25..].as_ptr());
    }

    #[test]
    fn parses_xlog_data_without_data_and_keepalive() {
        let mut raw = vec![b'w'];
        raw.extend_from_slice(&[0; 24]);
        let ReplicationMessage::XLogData(x) = ReplicationMessage::parse(raw.into()).unwrap() else {
            panic!("expected XLogData");
        };
        assert!(x.data.is_empty());

        #[rustfmt::skip]
        let raw: &[u8] = &[
            b'k',
            0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x01, 0x58, // end 0/3000158
            0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, // -1 µs
            0x01,
        ];
        assert_eq!(
            ReplicationMessage::parse(Bytes::copy_from_slice(raw)),
            Ok(ReplicationMessage::Keepalive(PrimaryKeepalive {
                wal_end: Lsn::new(0x3000158),
                server_time: PgTimestamp::from_pg_micros(-1),
                reply_requested: true,
            }))
        );
    }

    #[test]
    fn rejects_empty_unknown_and_short() {
        assert_eq!(
            ReplicationMessage::parse(Bytes::new()),
            Err(ReplicationMessageError::Empty)
        );
        assert_eq!(
            ReplicationMessage::parse(Bytes::from_static(b"r")),
            Err(ReplicationMessageError::UnknownTag { tag: b'r' })
        );
        assert_eq!(
            ReplicationMessage::parse(Bytes::from(vec![b'w'; 24])),
            Err(ReplicationMessageError::Short {
                kind: "XLogData",
                actual: 24,
                needed: 25
            })
        );
        assert_eq!(
            ReplicationMessage::parse(Bytes::from(vec![b'k'; 17])),
            Err(ReplicationMessageError::Short {
                kind: "keepalive",
                actual: 17,
                needed: 18
            })
        );
    }

    #[test]
    fn encodes_status_update_like_the_protocol_doc() {
        let mut buf = BytesMut::new();
        StandbyStatusUpdate {
            write: Lsn::new(0x0102_0304_0506_0708),
            flush: Lsn::new(0x3000158),
            apply: Lsn::INVALID,
            client_time: PgTimestamp::from_pg_micros(1),
            reply_requested: false,
        }
        .encode(&mut buf);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            b'r',
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
            0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x01, 0x58,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
            0x00,
        ];
        assert_eq!(&buf[..], expected);
    }

    proptest! {
        #[test]
        fn xlog_data_round_trip(
            start in any::<u64>(),
            end in any::<u64>(),
            time in any::<i64>(),
            data in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let msg = XLogData {
                wal_start: Lsn::new(start),
                wal_end: Lsn::new(end),
                server_time: PgTimestamp::from_pg_micros(time),
                data: data.into(),
            };
            let mut buf = BytesMut::new();
            msg.encode(&mut buf);
            prop_assert_eq!(
                ReplicationMessage::parse(buf.freeze()),
                Ok(ReplicationMessage::XLogData(msg))
            );
        }

        #[test]
        fn keepalive_round_trip(end in any::<u64>(), time in any::<i64>(), reply in any::<bool>()) {
            let msg = PrimaryKeepalive {
                wal_end: Lsn::new(end),
                server_time: PgTimestamp::from_pg_micros(time),
                reply_requested: reply,
            };
            let mut buf = BytesMut::new();
            msg.encode(&mut buf);
            prop_assert_eq!(
                ReplicationMessage::parse(buf.freeze()),
                Ok(ReplicationMessage::Keepalive(msg))
            );
        }

        #[test]
        fn parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = ReplicationMessage::parse(raw.into());
        }
    }
}
