//! Length-encoded integers and strings, and a bounds-checked reader for payload fields.
//!
//! A length-encoded integer is one byte below 0xFB, or a marker and 2 (0xFC), 3 (0xFD) or 8
//! (0xFE) little-endian bytes. 0xFB stands for SQL NULL in a text-protocol row and 0xFF starts
//! an ERR packet, so neither is an integer.

use bytes::{BufMut, BytesMut};

/// A payload that does not hold the message its first byte announced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A field runs past the end of the payload.
    #[error(
        "truncated {message}: its {field} needs {needed} bytes but only {left} are left \
         (the server sent a short packet, or this is not the message expected here)"
    )]
    Truncated {
        /// The message being parsed.
        message: &'static str,
        /// The field that did not fit.
        field: &'static str,
        /// The bytes the field needs.
        needed: u64,
        /// The bytes left in the payload.
        left: usize,
    },
    /// A field has a value the protocol does not allow here.
    #[error("malformed {message}: {detail}")]
    Malformed {
        /// The message being parsed.
        message: &'static str,
        /// What is wrong, with the offending value.
        detail: String,
    },
}

/// Reads a length-encoded integer off the front of `input`.
///
/// `Ok(None)` means `input` is too short; 0xFB (NULL) and 0xFF (ERR) are refused.
pub fn read_lenenc_int(input: &mut &[u8]) -> Result<Option<u64>, ParseError> {
    let Some((&first, rest)) = input.split_first() else {
        return Ok(None);
    };
    let width = match first {
        0..=0xFA => {
            *input = rest;
            return Ok(Some(u64::from(first)));
        }
        0xFC => 2,
        0xFD => 3,
        0xFE => 8,
        0xFB | 0xFF => {
            return Err(ParseError::Malformed {
                message: "length-encoded integer",
                detail: format!("0x{first:02X} is a marker (NULL or ERR), not an integer"),
            });
        }
    };
    let Some(digits) = rest.get(..width) else {
        return Ok(None);
    };
    let mut le = [0u8; 8];
    for (slot, &b) in le.iter_mut().zip(digits) {
        *slot = b;
    }
    *input = rest.get(width..).unwrap_or_default();
    Ok(Some(u64::from_le_bytes(le)))
}

/// Reads a length-encoded string off the front of `input`; `Ok(None)` means it is too short.
pub fn read_lenenc_bytes<'a>(input: &mut &'a [u8]) -> Result<Option<&'a [u8]>, ParseError> {
    let mut rest = *input;
    let Some(len) = read_lenenc_int(&mut rest)? else {
        return Ok(None);
    };
    let Some(bytes) = usize::try_from(len).ok().and_then(|len| rest.get(..len)) else {
        return Ok(None);
    };
    *input = rest.get(bytes.len()..).unwrap_or_default();
    Ok(Some(bytes))
}

/// Appends `n` as a length-encoded integer, in the shortest form.
pub fn put_lenenc_int(buf: &mut BytesMut, n: u64) {
    match n {
        0..=0xFA => buf.put_u8(n as u8),
        0xFB..=0xFFFF => {
            buf.put_u8(0xFC);
            buf.put_u16_le(n as u16);
        }
        0x1_0000..=0xFF_FFFF => {
            let [a, b, c, ..] = n.to_le_bytes();
            buf.put_slice(&[0xFD, a, b, c]);
        }
        _ => {
            buf.put_u8(0xFE);
            buf.put_u64_le(n);
        }
    }
}

/// Appends `bytes` as a length-encoded string.
pub fn put_lenenc_bytes(buf: &mut BytesMut, bytes: &[u8]) {
    put_lenenc_int(buf, bytes.len() as u64);
    buf.put_slice(bytes);
}

/// Reads little-endian fields off the front of a payload, naming the message in its errors.
pub(crate) struct Reader<'a> {
    message: &'static str,
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(message: &'static str, payload: &'a [u8]) -> Reader<'a> {
        Reader {
            message,
            rest: payload,
        }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn truncated(&self, field: &'static str, needed: u64) -> ParseError {
        ParseError::Truncated {
            message: self.message,
            field,
            needed,
            left: self.rest.len(),
        }
    }

    pub(crate) fn malformed(&self, detail: String) -> ParseError {
        ParseError::Malformed {
            message: self.message,
            detail,
        }
    }

    pub(crate) fn bytes(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], ParseError> {
        if self.rest.len() < n {
            return Err(self.truncated(field, n as u64));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ParseError> {
        let (head, tail) = self
            .rest
            .split_first_chunk::<N>()
            .ok_or_else(|| self.truncated(field, N as u64))?;
        self.rest = tail;
        Ok(*head)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, ParseError> {
        Ok(u8::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, ParseError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ParseError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn lenenc_int(&mut self, field: &'static str) -> Result<u64, ParseError> {
        let mut rest = self.rest;
        match read_lenenc_int(&mut rest) {
            Ok(Some(n)) => {
                self.rest = rest;
                Ok(n)
            }
            Ok(None) => Err(self.truncated(field, lenenc_width(self.peek()))),
            Err(_) => Err(self.malformed(format!(
                "its {field} starts with 0x{:02X}, which is not a length-encoded integer",
                self.peek().unwrap_or_default()
            ))),
        }
    }

    pub(crate) fn lenenc_bytes(&mut self, field: &'static str) -> Result<&'a [u8], ParseError> {
        let len = self.lenenc_int(field)?;
        match usize::try_from(len) {
            Ok(n) if n <= self.rest.len() => self.bytes(field, n),
            _ => Err(self.truncated(field, len)),
        }
    }

    /// Bytes up to a NUL, which is consumed; without a NUL, an error.
    pub(crate) fn nul_terminated(&mut self, field: &'static str) -> Result<&'a [u8], ParseError> {
        let end = self
            .rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.malformed(format!("its {field} has no terminating NUL")))?;
        let head = self.bytes(field, end)?;
        self.bytes(field, 1)?;
        Ok(head)
    }

    /// Bytes up to a NUL or the end, whichever comes first (the NUL is consumed).
    pub(crate) fn nul_terminated_or_rest(&mut self) -> &'a [u8] {
        match self.rest.iter().position(|&b| b == 0) {
            Some(end) => {
                let head = self.rest.get(..end).unwrap_or_default();
                self.rest = self.rest.get(end + 1..).unwrap_or_default();
                head
            }
            None => self.rest(),
        }
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }
}

/// The bytes a length-encoded integer starting with `first` occupies, for error messages.
fn lenenc_width(first: Option<u8>) -> u64 {
    match first {
        Some(0xFC) => 3,
        Some(0xFD) => 4,
        Some(0xFE) => 9,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_each_width_at_its_boundaries() {
        for (n, expected) in [
            (0u64, &[0x00][..]),
            (250, &[0xFA]),
            (251, &[0xFC, 0xFB, 0x00]),
            (0xFFFF, &[0xFC, 0xFF, 0xFF]),
            (0x1_0000, &[0xFD, 0x00, 0x00, 0x01]),
            (0xFF_FFFF, &[0xFD, 0xFF, 0xFF, 0xFF]),
            (0x100_0000, &[0xFE, 0, 0, 0, 1, 0, 0, 0, 0]),
        ] {
            let mut buf = BytesMut::new();
            put_lenenc_int(&mut buf, n);
            assert_eq!(&buf[..], expected, "{n}");
            let mut input = &buf[..];
            assert_eq!(read_lenenc_int(&mut input), Ok(Some(n)));
            assert!(input.is_empty());
        }
    }

    #[test]
    fn refuses_markers_and_waits_for_short_input() {
        assert!(read_lenenc_int(&mut &[0xFB][..]).is_err());
        assert!(read_lenenc_int(&mut &[0xFF][..]).is_err());
        assert_eq!(read_lenenc_int(&mut &[0xFC, 1][..]), Ok(None));
        assert_eq!(read_lenenc_int(&mut &[][..]), Ok(None));
        assert_eq!(read_lenenc_bytes(&mut &[3, b'a', b'b'][..]), Ok(None));
    }

    proptest! {
        #[test]
        fn lenenc_int_round_trips(n: u64, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut buf = BytesMut::new();
            put_lenenc_int(&mut buf, n);
            buf.extend_from_slice(&tail);
            let mut input = &buf[..];
            prop_assert_eq!(read_lenenc_int(&mut input), Ok(Some(n)));
            prop_assert_eq!(input, &tail[..]);
        }

        #[test]
        fn lenenc_bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..70_000)) {
            let mut buf = BytesMut::new();
            put_lenenc_bytes(&mut buf, &bytes);
            let mut input = &buf[..];
            prop_assert_eq!(read_lenenc_bytes(&mut input), Ok(Some(&bytes[..])));
            prop_assert!(input.is_empty());
        }

        #[test]
        fn lenenc_reads_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = read_lenenc_int(&mut &bytes[..]);
            let _ = read_lenenc_bytes(&mut &bytes[..]);
        }
    }
}
