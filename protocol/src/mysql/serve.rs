//! The primary's side of a dump stream, sans-IO: the events a server makes up or rewrites
//! before it sends a binlog file's own events to a replica.
//!
//! MariaDB's `mysql_binlog_send` (`sql/sql_repl.cc`) opens every file it sends with a fake
//! ROTATE that names the file ([`fake_rotate`]), then the file's FORMAT_DESCRIPTION with
//! `LOG_EVENT_BINLOG_IN_USE_F` cleared ([`format_description_for_dump`]); when the dump
//! starts past the first event of the file, that FORMAT_DESCRIPTION also gets `log_pos` 0
//! and a zero creation time, so that the replica neither advances its position for it nor
//! drops its temporary tables. While it waits for new events, it sends heartbeats
//! ([`heartbeat`]). Each is framed with [`encode_dump_event`](super::dump::encode_dump_event).
//!
//! The greeting, the login check and the replies a primary sends live next to the client's
//! parsers: [`HandshakeV10::encode`](super::HandshakeV10::encode),
//! [`HandshakeResponse41::parse`](super::HandshakeResponse41::parse),
//! [`check_native_password`](super::auth::check_native_password), the `encode` methods of
//! [`OkPacket`](super::OkPacket), [`ErrPacket`](super::ErrPacket) and
//! [`ResultSet`](super::ResultSet), and [`Command::parse`](super::Command::parse).

use bytes::{BufMut, Bytes, BytesMut};

use super::event::{
    CHECKSUM_LEN, ChecksumAlg, EventHeader, EventType, HEADER_LEN, LOG_EVENT_ARTIFICIAL_F,
    LOG_EVENT_BINLOG_IN_USE_F, crc32,
};

/// Offset of `log_pos` in the common header (`LOG_POS_OFFSET`).
const LOG_POS_OFFSET: usize = 13;
/// Offset of the flags in the common header (`FLAGS_OFFSET`).
const FLAGS_OFFSET: usize = 17;
/// Offset of a FORMAT_DESCRIPTION's creation time: after the header, the binlog version
/// (2 bytes) and the server version (50 bytes) (`ST_CREATED_OFFSET`).
const FDE_CREATED_OFFSET: usize = HEADER_LEN + 2 + 50;

/// Builds an event the sender makes up: timestamp 0, `server_id`, `log_pos`, `flags`,
/// `body`, and a CRC32 when `checksum` says so.
fn made_up_event(
    event_type: EventType,
    server_id: u32,
    log_pos: u32,
    flags: u16,
    body: &[&[u8]],
    checksum: ChecksumAlg,
) -> Bytes {
    let body_len: usize = body.iter().map(|part| part.len()).sum();
    let size = HEADER_LEN + body_len + checksum.len();
    let mut out = BytesMut::with_capacity(size);
    EventHeader {
        timestamp: 0,
        event_type,
        server_id,
        event_size: u32::try_from(size).unwrap_or(u32::MAX),
        log_pos,
        flags,
    }
    .encode(&mut out);
    for part in body {
        out.put_slice(part);
    }
    if checksum == ChecksumAlg::Crc32 {
        let crc = crc32(&out);
        out.put_u32_le(crc);
    }
    out.freeze()
}

/// The fake ROTATE that opens the dump of each file: artificial, `log_pos` 0, naming `file`
/// and the `position` the events that follow start at; checksummed with the algorithm the
/// replica expects before it has the file's FORMAT_DESCRIPTION.
pub fn fake_rotate(server_id: u32, file: &str, position: u64, checksum: ChecksumAlg) -> Bytes {
    made_up_event(
        EventType::ROTATE,
        server_id,
        0,
        LOG_EVENT_ARTIFICIAL_F,
        &[&position.to_le_bytes(), file.as_bytes()],
        checksum,
    )
}

/// A heartbeat: the sender is at `position` of `file` and has nothing new to send.
pub fn heartbeat(server_id: u32, file: &str, position: u32, checksum: ChecksumAlg) -> Bytes {
    made_up_event(
        EventType::HEARTBEAT,
        server_id,
        position,
        0,
        &[file.as_bytes()],
        checksum,
    )
}

/// A FORMAT_DESCRIPTION that cannot be rewritten for a dump.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the event to resend is {len} bytes of type {event_type}, not a FORMAT_DESCRIPTION_EVENT of \
     at least {min} bytes"
)]
pub struct NotAFormatDescription {
    /// Its type, as the header says.
    pub event_type: EventType,
    /// Its length.
    pub len: usize,
    /// The least a FORMAT_DESCRIPTION can be.
    pub min: usize,
}

/// A file's FORMAT_DESCRIPTION (`raw`, as the file holds it, already checked) as a primary
/// sends it: `LOG_EVENT_BINLOG_IN_USE_F` cleared; with `resumed` (the dump starts past the
/// file's first event) also `log_pos` and the creation time 0. `checksum` is the algorithm
/// the event itself announces; with CRC32 the checksum is computed again.
pub fn format_description_for_dump(
    raw: &[u8],
    resumed: bool,
    checksum: Option<ChecksumAlg>,
) -> Result<Bytes, NotAFormatDescription> {
    let event_type = EventHeader::parse(raw).map_or(EventType(0), |h| h.event_type);
    let min = FDE_CREATED_OFFSET + 4;
    if event_type != EventType::FORMAT_DESCRIPTION || raw.len() < min {
        return Err(NotAFormatDescription {
            event_type,
            len: raw.len(),
            min,
        });
    }
    let mut out = BytesMut::from(raw);
    if let Some(flags) = out.get_mut(FLAGS_OFFSET) {
        *flags &= !(LOG_EVENT_BINLOG_IN_USE_F as u8);
    }
    if !resumed {
        // The CRC was computed with the flag clear, so it still holds.
        return Ok(out.freeze());
    }
    for offset in [LOG_POS_OFFSET, FDE_CREATED_OFFSET] {
        if let Some(field) = out.get_mut(offset..offset + 4) {
            field.fill(0);
        }
    }
    if checksum == Some(ChecksumAlg::Crc32) {
        let n = out.len().saturating_sub(CHECKSUM_LEN);
        let crc = crc32(out.get(..n).unwrap_or_default());
        if let Some(tail) = out.get_mut(n..) {
            tail.copy_from_slice(&crc.to_le_bytes());
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::event::{EventData, EventDecoder};

    #[test]
    fn fake_rotate_decodes_as_an_artificial_rotate() {
        for alg in [ChecksumAlg::Crc32, ChecksumAlg::Off] {
            let raw = fake_rotate(7, "binlog.000002", 4, alg);
            let event = EventDecoder::with_checksum(alg).decode(raw, 0).unwrap();
            assert!(event.is_artificial() && event.is_stream_only());
            assert_eq!(event.header().server_id, 7);
            assert_eq!(event.header().log_pos, 0);
            match event.data() {
                EventData::Rotate(r) => {
                    assert_eq!((r.position, r.next_file.as_str()), (4, "binlog.000002"));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn heartbeat_names_file_and_position() {
        let raw = heartbeat(7, "binlog.000003", 1234, ChecksumAlg::Crc32);
        let event = EventDecoder::with_checksum(ChecksumAlg::Crc32)
            .decode(raw, 0)
            .unwrap();
        assert_eq!(event.header().log_pos, 1234);
        assert_eq!(
            event.data(),
            &EventData::Heartbeat {
                log_file: "binlog.000003".into()
            }
        );
    }

    #[test]
    fn refuses_to_rewrite_another_event() {
        let raw = heartbeat(7, "binlog.000003", 1234, ChecksumAlg::Crc32);
        let err = format_description_for_dump(&raw, true, Some(ChecksumAlg::Crc32)).unwrap_err();
        assert_eq!(err.event_type, EventType::HEARTBEAT);
    }
}
