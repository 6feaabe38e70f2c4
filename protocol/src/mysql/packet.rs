//! Packet framing: a 3-byte little-endian payload length, a 1-byte sequence id, the payload.
//!
//! A payload of 0xFFFFFF bytes or more is sent as several packets: every full packet
//! (exactly 0xFFFFFF bytes) says "more follows", and the first shorter one ends the logical
//! payload. A payload that is an exact multiple of 0xFFFFFF therefore ends with an empty
//! packet. The server numbers each packet of a command's exchange with consecutive sequence
//! ids (wrapping at 255), starting at 0 for a new command.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The most payload one packet carries; a packet this full continues in the next one.
pub const MAX_CHUNK: usize = 0xFF_FFFF;

/// The length of a packet header: 3 bytes of length, 1 of sequence id.
pub const HEADER_LEN: usize = 4;

/// One logical payload, reassembled from one or more packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The sequence id of the first packet of this payload.
    pub seq: u8,
    /// The sequence id of the last packet of this payload (equal to `seq` unless it was split).
    pub last_seq: u8,
    /// The payload, without headers.
    pub payload: Bytes,
}

impl Packet {
    /// The sequence id a reply to this payload must carry (the last one plus one, wrapping).
    pub fn next_seq(&self) -> u8 {
        self.last_seq.wrapping_add(1)
    }
}

/// A packet stream this decoder refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// The logical payload would be larger than the configured maximum.
    #[error(
        "MySQL packet payload of at least {at_least} bytes exceeds the limit of {limit} bytes \
         (raise the limit if the server's max_allowed_packet is larger)"
    )]
    TooLarge {
        /// The size the payload reached, counting the fragment that crossed the limit.
        at_least: usize,
        /// The configured maximum.
        limit: usize,
    },
    /// A continuation packet of a split payload has an unexpected sequence id.
    #[error(
        "MySQL packet continuation has sequence id {actual}, expected {expected} \
         (the stream is corrupt or out of step; reconnect)"
    )]
    SequenceGap {
        /// The id the next fragment should have had.
        expected: u8,
        /// The id it had.
        actual: u8,
    },
}

/// Reassembles logical payloads from a byte stream, within a size limit.
///
/// It does not check that one logical payload's sequence id follows the previous one's:
/// a server legitimately restarts at 0 (for instance after a semi-sync event that asks for an
/// acknowledgement), so checking is up to the caller, with [`Packet::seq`]. Inside one split
/// payload the ids must be consecutive. After an error the stream is out of step: reconnect.
#[derive(Debug)]
pub struct PacketDecoder {
    max_payload: usize,
    /// Fragments of a split payload received so far.
    partial: BytesMut,
    /// The first and last sequence ids of the fragments in `partial`, if any.
    partial_seq: Option<(u8, u8)>,
}

impl PacketDecoder {
    /// A decoder that refuses logical payloads larger than `max_payload` bytes.
    pub fn new(max_payload: usize) -> PacketDecoder {
        PacketDecoder {
            max_payload,
            partial: BytesMut::new(),
            partial_seq: None,
        }
    }

    /// The configured maximum payload size.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Takes whole packets off the front of `buf`; `Ok(None)` means more bytes are needed.
    ///
    /// Fragments of a split payload are moved out of `buf` as they arrive, so `buf` never has to
    /// hold more than one fragment. The limit is checked from the headers, before the bytes
    /// arrive, so an oversized payload is refused without being buffered.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, PacketError> {
        loop {
            let Some((len, seq)) = peek_header(buf) else {
                return Ok(None);
            };
            if let Some((_, last)) = self.partial_seq {
                let expected = last.wrapping_add(1);
                if seq != expected {
                    return Err(PacketError::SequenceGap {
                        expected,
                        actual: seq,
                    });
                }
            }
            let total = self.partial.len().saturating_add(len);
            if total > self.max_payload {
                return Err(PacketError::TooLarge {
                    at_least: total,
                    limit: self.max_payload,
                });
            }
            if buf.len() < HEADER_LEN + len {
                buf.reserve(HEADER_LEN + len - buf.len());
                return Ok(None);
            }
            buf.advance(HEADER_LEN);
            let fragment = buf.split_to(len);
            let more = len == MAX_CHUNK;
            match (self.partial_seq, more) {
                // The common case: a whole payload in one packet, handed over without a copy.
                (None, false) => {
                    return Ok(Some(Packet {
                        seq,
                        last_seq: seq,
                        payload: fragment.freeze(),
                    }));
                }
                (None, true) => {
                    self.partial = fragment;
                    self.partial_seq = Some((seq, seq));
                }
                (Some((first, _)), true) => {
                    self.partial.unsplit(fragment);
                    self.partial_seq = Some((first, seq));
                }
                (Some((first, _)), false) => {
                    self.partial.unsplit(fragment);
                    self.partial_seq = None;
                    return Ok(Some(Packet {
                        seq: first,
                        last_seq: seq,
                        payload: std::mem::take(&mut self.partial).freeze(),
                    }));
                }
            }
        }
    }
}

/// The payload length and sequence id of the packet at the front of `buf`, if its header is there.
fn peek_header(buf: &[u8]) -> Option<(usize, u8)> {
    let (header, _) = buf.split_first_chunk::<HEADER_LEN>()?;
    let [a, b, c, seq] = *header;
    Some((
        usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16,
        seq,
    ))
}

/// Appends `payload` framed as packets starting at sequence id `seq`; returns the id after the last.
pub fn encode_packet(seq: u8, payload: &[u8], buf: &mut BytesMut) -> u8 {
    encode_packet_parts(seq, &[], payload, buf)
}

/// Appends the payload `head` followed by `body` framed as packets starting at sequence id
/// `seq`, without joining them first; returns the id after the last. A dump stream sends
/// each event this way, behind its status byte.
pub fn encode_packet_parts(seq: u8, head: &[u8], body: &[u8], buf: &mut BytesMut) -> u8 {
    let total = head.len() + body.len();
    let mut seq = seq;
    let (mut head, mut body) = (head, body);
    buf.reserve(total + HEADER_LEN * (total / MAX_CHUNK + 1));
    loop {
        let len = (head.len() + body.len()).min(MAX_CHUNK);
        put_u24(buf, len);
        buf.put_u8(seq);
        let (h, rest_head) = head.split_at(head.len().min(len));
        let (b, rest_body) = body.split_at(body.len().min(len - h.len()));
        buf.put_slice(h);
        buf.put_slice(b);
        (head, body) = (rest_head, rest_body);
        seq = seq.wrapping_add(1);
        // A full chunk promises more, so an exact multiple ends with an empty packet.
        if len < MAX_CHUNK {
            return seq;
        }
    }
}

/// Appends the low 24 bits of `n`, little-endian.
fn put_u24(buf: &mut BytesMut, n: usize) {
    let [a, b, c, ..] = (n as u32).to_le_bytes();
    buf.put_slice(&[a, b, c]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_reassembles_an_exact_multiple() {
        let payload = vec![7u8; MAX_CHUNK];
        let mut buf = BytesMut::new();
        assert_eq!(encode_packet(3, &payload, &mut buf), 5);
        // One full packet and an empty one.
        assert_eq!(buf.len(), MAX_CHUNK + 2 * HEADER_LEN);
        assert_eq!(&buf[MAX_CHUNK + HEADER_LEN..], &[0, 0, 0, 4]);
        let mut dec = PacketDecoder::new(1 << 25);
        let packet = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!((packet.seq, packet.last_seq, packet.next_seq()), (3, 4, 5));
        assert_eq!(packet.payload.len(), MAX_CHUNK);
        assert!(buf.is_empty());
    }

    #[test]
    fn reassembles_more_than_16_mib_fed_in_pieces() {
        let payload: Vec<u8> = (0..MAX_CHUNK * 2 + 10).map(|i| (i % 251) as u8).collect();
        let mut wire = BytesMut::new();
        assert_eq!(encode_packet(255, &payload, &mut wire), 2);
        let mut dec = PacketDecoder::new(MAX_CHUNK * 3);
        let mut buf = BytesMut::new();
        let mut got = None;
        for piece in wire.chunks(1 << 20) {
            buf.extend_from_slice(piece);
            if let Some(p) = dec.decode(&mut buf).unwrap() {
                got = Some(p);
            }
        }
        let packet = got.unwrap();
        assert_eq!((packet.seq, packet.last_seq), (255, 1));
        assert!(packet.payload == payload);
    }

    #[test]
    fn refuses_a_payload_over_the_limit_from_its_header() {
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0][..]);
        let mut dec = PacketDecoder::new(1000);
        assert_eq!(
            dec.decode(&mut buf),
            Err(PacketError::TooLarge {
                at_least: MAX_CHUNK,
                limit: 1000
            })
        );
    }

    #[test]
    fn refuses_a_gap_inside_a_split_payload() {
        let mut buf = BytesMut::new();
        encode_packet(0, &vec![0u8; MAX_CHUNK], &mut buf);
        let last = buf.len() - 1;
        buf[last] = 9;
        let mut dec = PacketDecoder::new(1 << 25);
        assert_eq!(
            dec.decode(&mut buf),
            Err(PacketError::SequenceGap {
                expected: 1,
                actual: 9
            })
        );
    }

    #[test]
    fn a_head_and_body_frame_as_their_concatenation() {
        for len in [0, 5, MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 3] {
            let body: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let mut joined = vec![0u8];
            joined.extend_from_slice(&body);
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            let seq_a = encode_packet(9, &joined, &mut a);
            let seq_b = encode_packet_parts(9, &[0], &body, &mut b);
            assert_eq!(seq_a, seq_b, "{len}");
            assert!(a == b, "{len}");
        }
    }

    #[test]
    fn accepts_a_sequence_restart_between_payloads() {
        let mut buf = BytesMut::new();
        encode_packet(7, b"a", &mut buf);
        encode_packet(0, b"b", &mut buf);
        let mut dec = PacketDecoder::new(100);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap().seq, 7);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap().seq, 0);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
    }
}
