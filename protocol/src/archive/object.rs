//! The framing every stored object carries: a 40-byte self-describing header, then the
//! payload. Readers verify both checksums before they hand out a byte.

/// The header's length in bytes.
pub const HEADER_LEN: usize = 40;

/// `LOGSHIP` and a NUL byte.
const MAGIC: [u8; 8] = *b"LOGSHIP\0";
/// The only format version this code reads and writes.
const VERSION: u16 = 1;
/// The header bytes covered by the header checksum.
const HEADER_CRC_COVERS: usize = 36;
/// LZ4 cannot expand more than about 255:1; a larger claim is a lie we must not allocate for.
const LZ4_MAX_RATIO: u64 = 255;

/// How the payload encodes the content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// The payload is the content.
    None,
    /// The payload is the content compressed as one LZ4 block (no LZ4 frame).
    Lz4,
}

impl Codec {
    fn to_byte(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Lz4 => 1,
        }
    }

    fn from_byte(byte: u8) -> Option<Codec> {
        match byte {
            0 => Some(Codec::None),
            1 => Some(Codec::Lz4),
            _ => None,
        }
    }
}

/// The verified fields of an object's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectHeader {
    /// How the payload encodes the content.
    pub codec: Codec,
    /// The content's length once decoded.
    pub content_len: u64,
    /// The payload's length as stored after the header.
    pub payload_len: u64,
    /// CRC-32 (IEEE) of the decoded content.
    pub content_crc: u32,
    /// CRC-32 (IEEE) of the stored payload, checked before decoding.
    pub payload_crc: u32,
}

/// A stored object that fails verification. The texts state the cause only: the caller
/// adds the object's key and the fix that fits what it was doing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// Fewer bytes than a header.
    #[error("object is {len} bytes, shorter than the {HEADER_LEN}-byte header: it is truncated")]
    TooShort {
        /// The stored length.
        len: usize,
    },
    /// The first 8 bytes are not the magic.
    #[error("not a logship object: it does not start with \"LOGSHIP\\0\"")]
    BadMagic,
    /// A format version this code cannot read.
    #[error("object format version {version} is not supported: this logship reads version 1")]
    UnsupportedVersion {
        /// The stored version.
        version: u16,
    },
    /// A codec byte this code does not know.
    #[error("object codec {codec} is unknown: this logship knows 0 = none and 1 = lz4")]
    UnknownCodec {
        /// The stored codec byte.
        codec: u8,
    },
    /// The header's own CRC does not match.
    #[error("object header checksum mismatch: stored {expected:08X}, computed {actual:08X}")]
    HeaderChecksum {
        /// The CRC stored in the header.
        expected: u32,
        /// The CRC of the header bytes as read.
        actual: u32,
    },
    /// The payload is not as long as the header says.
    #[error(
        "object payload is {actual} bytes but its header says {expected}: it is truncated or \
         has trailing bytes"
    )]
    PayloadLength {
        /// The payload length in the header.
        expected: u64,
        /// The bytes after the header.
        actual: u64,
    },
    /// The stored payload's CRC does not match: checked before any byte is decoded.
    #[error("object payload checksum mismatch: expected {expected:08X}, computed {actual:08X}")]
    PayloadChecksum {
        /// The CRC in the header.
        expected: u32,
        /// The CRC of the stored payload.
        actual: u32,
    },
    /// The payload cannot be decoded with its codec.
    #[error("object payload does not decompress: {reason}")]
    Decompress {
        /// The decoder's complaint.
        reason: String,
    },
    /// The decoded content is not as long as the header says.
    #[error("object content is {actual} bytes but its header says {expected}")]
    ContentLength {
        /// The content length in the header.
        expected: u64,
        /// The decoded length.
        actual: u64,
    },
    /// The decoded content's CRC does not match.
    #[error("object content checksum mismatch: expected {expected:08X}, computed {actual:08X}")]
    ContentChecksum {
        /// The CRC in the header.
        expected: u32,
        /// The CRC of the decoded content.
        actual: u32,
    },
}

impl ObjectError {
    /// Whether the object is in a version or codec this logship does not read, as a newer
    /// logship writes it: the fix is an upgrade, not a repair.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            ObjectError::UnsupportedVersion { .. } | ObjectError::UnknownCodec { .. }
        )
    }
}

/// Frames `content` for storage: header, then the payload encoded with `codec`.
pub fn encode(content: &[u8], codec: Codec) -> Vec<u8> {
    Framer::default().frame(content, codec).to_vec()
}

/// Frames objects in one buffer that every object reuses, for a stream of objects:
/// framing allocates nothing once the buffer has grown to the largest object, and the
/// buffer's memory is touched only as far as the longest payload written into it.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    /// A framer whose buffer already has room for an lz4 object of `content_len` bytes
    /// of content. A stream's archiver takes its buffer while it starts, for the largest
    /// object it makes: grown later, the buffer could come from memory freed before, which
    /// must be zeroed (and so paid for in full) rather than handed out as fresh zero pages.
    pub fn for_content(content_len: usize) -> Framer {
        let mut framer = Framer::default();
        framer.payload_room(HEADER_LEN + lz4_flex::block::get_maximum_output_size(content_len));
        framer
    }

    /// Frames `content` as [`encode`] does; the framed object lives until the next call.
    pub fn frame(&mut self, content: &[u8], codec: Codec) -> &[u8] {
        let (codec, payload_len) = match codec {
            Codec::None => (Codec::None, self.copy_payload(content)),
            Codec::Lz4 => {
                let room = HEADER_LEN + lz4_flex::block::get_maximum_output_size(content.len());
                let out = self.payload_room(room);
                match lz4_flex::block::compress_into(content, out) {
                    Ok(len) => (Codec::Lz4, len),
                    // Only an output shorter than the maximum fails, which `room` rules out;
                    // the content stored as is still makes a valid object.
                    Err(_) => (Codec::None, self.copy_payload(content)),
                }
            }
        };
        let payload = self
            .buf
            .get(HEADER_LEN..HEADER_LEN + payload_len)
            .unwrap_or_default();
        let header = header(codec, content, payload);
        let framed = self
            .buf
            .get_mut(..HEADER_LEN + payload_len)
            .unwrap_or_default();
        if let Some(head) = framed.first_chunk_mut::<HEADER_LEN>() {
            *head = header;
        }
        framed
    }

    /// Copies `content` after the header's place; returns its length.
    fn copy_payload(&mut self, content: &[u8]) -> usize {
        let out = self.payload_room(HEADER_LEN + content.len());
        if let Some(out) = out.get_mut(..content.len()) {
            out.copy_from_slice(content);
        }
        content.len()
    }

    /// The buffer after the header's place, `len` bytes long at least in all.
    fn payload_room(&mut self, len: usize) -> &mut [u8] {
        if self.buf.len() < len {
            // A fresh zeroed allocation rather than `resize`: the allocator hands out zero
            // pages that cost no memory until a payload is written into them.
            self.buf = vec![0; len];
        }
        self.buf.get_mut(HEADER_LEN..).unwrap_or_default()
    }
}

/// The header of an object whose `payload` encodes `content` with `codec`.
fn header(codec: Codec, content: &[u8], payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut out = [0; HEADER_LEN];
    let mut fields = FieldsMut(&mut out);
    fields.put(MAGIC);
    fields.put(VERSION.to_le_bytes());
    fields.put([codec.to_byte(), 0]);
    fields.put((content.len() as u64).to_le_bytes());
    fields.put((payload.len() as u64).to_le_bytes());
    fields.put(crc32fast::hash(content).to_le_bytes());
    fields.put(crc32fast::hash(payload).to_le_bytes());
    let header_crc = crc32fast::hash(out.get(..HEADER_CRC_COVERS).unwrap_or_default());
    if let Some(last) = out.last_chunk_mut::<4>() {
        *last = header_crc.to_le_bytes();
    }
    out
}

/// Reads and verifies the header (magic, version, header CRC, codec) of a stored object;
/// `stored` may be just the first [`HEADER_LEN`] bytes.
pub fn read_header(stored: &[u8]) -> Result<ObjectHeader, ObjectError> {
    let raw = stored
        .first_chunk::<HEADER_LEN>()
        .and_then(RawHeader::split)
        .ok_or(ObjectError::TooShort { len: stored.len() })?;
    if raw.magic != MAGIC {
        return Err(ObjectError::BadMagic);
    }
    if raw.version != VERSION {
        return Err(ObjectError::UnsupportedVersion {
            version: raw.version,
        });
    }
    if raw.header_crc != raw.computed_crc {
        return Err(ObjectError::HeaderChecksum {
            expected: raw.header_crc,
            actual: raw.computed_crc,
        });
    }
    let codec =
        Codec::from_byte(raw.codec).ok_or(ObjectError::UnknownCodec { codec: raw.codec })?;
    Ok(ObjectHeader {
        codec,
        content_len: raw.content_len,
        payload_len: raw.payload_len,
        content_crc: raw.content_crc,
        payload_crc: raw.payload_crc,
    })
}

/// The header's fields as stored, before any of them is trusted.
struct RawHeader {
    magic: [u8; 8],
    version: u16,
    codec: u8,
    content_len: u64,
    payload_len: u64,
    content_crc: u32,
    payload_crc: u32,
    header_crc: u32,
    computed_crc: u32,
}

impl RawHeader {
    /// Splits the header into fields; reserved bytes are skipped, as version 1 readers must.
    fn split(header: &[u8; HEADER_LEN]) -> Option<RawHeader> {
        let (covered, _) = header.split_first_chunk::<HEADER_CRC_COVERS>()?;
        let mut fields = Fields(header);
        let magic = fields.take()?;
        let version = u16::from_le_bytes(fields.take()?);
        let [codec, _reserved] = fields.take()?;
        let content_len = u64::from_le_bytes(fields.take()?);
        let payload_len = u64::from_le_bytes(fields.take()?);
        let content_crc = u32::from_le_bytes(fields.take()?);
        let payload_crc = u32::from_le_bytes(fields.take()?);
        let header_crc = u32::from_le_bytes(fields.take()?);
        Some(RawHeader {
            magic,
            version,
            codec,
            content_len,
            payload_len,
            content_crc,
            payload_crc,
            header_crc,
            computed_crc: crc32fast::hash(covered),
        })
    }
}

/// Verifies a stored object and returns its content; nothing is returned unless every
/// length and checksum matches.
pub fn decode(stored: &[u8]) -> Result<Vec<u8>, ObjectError> {
    let header = read_header(stored)?;
    let payload = stored.get(HEADER_LEN..).unwrap_or_default();
    let actual = payload.len() as u64;
    if header.payload_len != actual {
        return Err(ObjectError::PayloadLength {
            expected: header.payload_len,
            actual,
        });
    }
    let actual = crc32fast::hash(payload);
    if header.payload_crc != actual {
        return Err(ObjectError::PayloadChecksum {
            expected: header.payload_crc,
            actual,
        });
    }
    let content = match header.codec {
        Codec::None => payload.to_vec(),
        Codec::Lz4 => decompress_lz4(payload, header.content_len)?,
    };
    let actual = content.len() as u64;
    if header.content_len != actual {
        return Err(ObjectError::ContentLength {
            expected: header.content_len,
            actual,
        });
    }
    let actual = crc32fast::hash(&content);
    if header.content_crc != actual {
        return Err(ObjectError::ContentChecksum {
            expected: header.content_crc,
            actual,
        });
    }
    Ok(content)
}

/// Decompresses one LZ4 block, refusing sizes no block of this length could produce.
fn decompress_lz4(payload: &[u8], content_len: u64) -> Result<Vec<u8>, ObjectError> {
    let max = (payload.len() as u64).saturating_mul(LZ4_MAX_RATIO);
    let len = usize::try_from(content_len)
        .ok()
        .filter(|_| content_len <= max)
        .ok_or_else(|| ObjectError::Decompress {
            reason: format!(
                "a {}-byte block cannot hold {content_len} bytes",
                payload.len()
            ),
        })?;
    let mut content = vec![0; len];
    let written = lz4_flex::block::decompress_into(payload, &mut content).map_err(|e| {
        ObjectError::Decompress {
            reason: e.to_string(),
        }
    })?;
    content.truncate(written);
    Ok(content)
}

/// Reads fixed-size fields off the front of the header without indexing.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

/// Writes fixed-size fields onto the front of a header without indexing.
struct FieldsMut<'a>(&'a mut [u8]);

impl FieldsMut<'_> {
    fn put<const N: usize>(&mut self, field: [u8; N]) {
        let rest = std::mem::take(&mut self.0);
        if let Some((head, rest)) = rest.split_first_chunk_mut::<N>() {
            *head = field;
            self.0 = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_layout_is_as_documented() {
        let stored = encode(b"hello", Codec::None);
        assert_eq!(stored.len(), HEADER_LEN + 5);
        assert_eq!(&stored[0..8], b"LOGSHIP\0");
        assert_eq!(&stored[8..10], &[1, 0]);
        assert_eq!(stored[10], 0);
        assert_eq!(stored[11], 0);
        assert_eq!(&stored[12..20], &5u64.to_le_bytes());
        assert_eq!(&stored[20..28], &5u64.to_le_bytes());
        assert_eq!(&stored[28..32], &crc32fast::hash(b"hello").to_le_bytes());
        assert_eq!(&stored[32..36], &crc32fast::hash(b"hello").to_le_bytes());
        assert_eq!(
            &stored[36..40],
            &crc32fast::hash(&stored[..36]).to_le_bytes()
        );
        assert_eq!(&stored[40..], b"hello");
        // CRC-32/ISO-HDLC check value, so other languages can confirm their CRC.
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn lz4_payload_is_a_raw_block() {
        let content = vec![7u8; 4096];
        let stored = encode(&content, Codec::Lz4);
        let header = read_header(&stored).unwrap();
        assert_eq!(header.codec, Codec::Lz4);
        assert_eq!(header.content_len, 4096);
        assert!(header.payload_len < 100);
        assert_eq!(
            lz4_flex::block::decompress(&stored[HEADER_LEN..], 4096).unwrap(),
            content
        );
        assert_eq!(read_header(&stored[..HEADER_LEN]), Ok(header));
    }

    #[test]
    fn empty_content_round_trips() {
        for codec in [Codec::None, Codec::Lz4] {
            assert_eq!(decode(&encode(b"", codec)).unwrap(), b"");
        }
    }

    #[test]
    fn every_single_byte_flip_is_detected() {
        let contents: [&[u8]; 2] = [
            b"0/3000158 then some WAL bytes, some WAL bytes, some WAL bytes",
            &[0x5A; 1],
        ];
        for content in contents {
            for codec in [Codec::None, Codec::Lz4] {
                let stored = encode(content, codec);
                for pos in 0..stored.len() {
                    for flip in [0x01, 0x10, 0x80, 0xFF] {
                        let mut bad = stored.clone();
                        bad[pos] ^= flip;
                        // The payload CRC catches even the flips an LZ4 decoder
                        // would ignore (the last sequence's match length).
                        assert!(
                            decode(&bad).is_err(),
                            "{codec:?} byte {pos} ^ {flip:#x} went unnoticed"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn specific_failures() {
        let stored = encode(b"hello", Codec::None);
        assert_eq!(
            decode(&stored[..39]),
            Err(ObjectError::TooShort { len: 39 })
        );
        assert_eq!(
            decode(b"PAR1 not ours, but long enough to hold a header"),
            Err(ObjectError::BadMagic)
        );

        let mut v2 = stored.clone();
        v2[8] = 2;
        assert_eq!(
            decode(&v2),
            Err(ObjectError::UnsupportedVersion { version: 2 })
        );

        let mut codec = stored.clone();
        codec[10] = 9;
        let crc = crc32fast::hash(&codec[..36]);
        codec[36..40].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode(&codec), Err(ObjectError::UnknownCodec { codec: 9 }));

        assert_eq!(
            decode(&stored[..44]),
            Err(ObjectError::PayloadLength {
                expected: 5,
                actual: 4
            })
        );
        let mut long = stored.clone();
        long.push(0);
        assert!(matches!(
            decode(&long),
            Err(ObjectError::PayloadLength { .. })
        ));

        let mut payload = stored.clone();
        payload[40] ^= 1;
        let err = decode(&payload).unwrap_err();
        assert!(matches!(err, ObjectError::PayloadChecksum { .. }));
        assert!(
            err.to_string()
                .contains(&format!("{:08X}", crc32fast::hash(b"hello")))
        );

        // A payload that matches its own CRC but not the content CRC (written
        // by a buggy encoder) still fails on the content CRC.
        let mut content = stored.clone();
        content[40] ^= 1;
        let crc = crc32fast::hash(&content[40..]);
        content[32..36].copy_from_slice(&crc.to_le_bytes());
        let crc = crc32fast::hash(&content[..36]);
        content[36..40].copy_from_slice(&crc.to_le_bytes());
        let err = decode(&content).unwrap_err();
        assert!(matches!(err, ObjectError::ContentChecksum { .. }));
        assert!(
            err.to_string()
                .contains(&format!("{:08X}", crc32fast::hash(b"hello")))
        );
    }

    #[test]
    fn refuses_impossible_lz4_sizes_without_allocating() {
        let mut stored = encode(b"tiny", Codec::Lz4);
        stored[12..20].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        let crc = crc32fast::hash(&stored[..36]);
        stored[36..40].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(
            decode(&stored),
            Err(ObjectError::Decompress { .. })
        ));
    }

    /// Regression: the texts used to carry a fix of their own ("archive it again from the
    /// source"), so every caller's line ended in two conflicting ones.
    #[test]
    fn texts_state_the_cause_only() {
        let cases = [
            (
                ObjectError::TooShort { len: 39 },
                "object is 39 bytes, shorter than the 40-byte header: it is truncated",
            ),
            (
                ObjectError::BadMagic,
                "not a logship object: it does not start with \"LOGSHIP\\0\"",
            ),
            (
                ObjectError::UnsupportedVersion { version: 2 },
                "object format version 2 is not supported: this logship reads version 1",
            ),
            (
                ObjectError::UnknownCodec { codec: 9 },
                "object codec 9 is unknown: this logship knows 0 = none and 1 = lz4",
            ),
            (
                ObjectError::HeaderChecksum {
                    expected: 0x1234_ABCD,
                    actual: 0x9988_7766,
                },
                "object header checksum mismatch: stored 1234ABCD, computed 99887766",
            ),
            (
                ObjectError::PayloadLength {
                    expected: 5,
                    actual: 4,
                },
                "object payload is 4 bytes but its header says 5: it is truncated or has \
                 trailing bytes",
            ),
            (
                ObjectError::PayloadChecksum {
                    expected: 0x1234_ABCD,
                    actual: 0x9988_7766,
                },
                "object payload checksum mismatch: expected 1234ABCD, computed 99887766",
            ),
            (
                ObjectError::Decompress {
                    reason: "offset out of bounds".into(),
                },
                "object payload does not decompress: offset out of bounds",
            ),
            (
                ObjectError::ContentLength {
                    expected: 5,
                    actual: 4,
                },
                "object content is 4 bytes but its header says 5",
            ),
            (
                ObjectError::ContentChecksum {
                    expected: 0x1234_ABCD,
                    actual: 0x9988_7766,
                },
                "object content checksum mismatch: expected 1234ABCD, computed 99887766",
            ),
        ];
        for (err, text) in &cases {
            assert_eq!(err.to_string(), *text);
        }
        // Only a version or codec from a newer logship calls for an upgrade.
        let unsupported = cases.map(|(err, _)| err.is_unsupported());
        assert_eq!(
            unsupported,
            [
                false, false, true, true, false, false, false, false, false, false
            ]
        );
    }

    proptest! {
        #[test]
        fn round_trip(content in proptest::collection::vec(any::<u8>(), 0..4096), lz4 in any::<bool>()) {
            let codec = if lz4 { Codec::Lz4 } else { Codec::None };
            prop_assert_eq!(decode(&encode(&content, codec)), Ok(content));
        }

        #[test]
        fn round_trip_compressible(byte in any::<u8>(), len in 0usize..100_000) {
            let content = vec![byte; len];
            prop_assert_eq!(decode(&encode(&content, Codec::Lz4)), Ok(content));
        }

        #[test]
        fn a_reused_framer_frames_each_object_as_encode_does(
            contents in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..4096), any::<bool>(), 1usize..64),
                1..8,
            ),
        ) {
            let mut framer = Framer::default();
            for (content, lz4, repeat) in contents {
                // Repeating bytes compress, so payloads shrink and grow from object to object.
                let content = content.repeat(repeat);
                let codec = if lz4 { Codec::Lz4 } else { Codec::None };
                prop_assert_eq!(framer.frame(&content, codec), &encode(&content, codec)[..]);
                prop_assert_eq!(decode(framer.frame(&content, codec)), Ok(content));
            }
        }

        #[test]
        fn decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode(&raw);
        }
    }
}
