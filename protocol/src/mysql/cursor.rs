//! A bounds-checked little-endian reader over a byte slice: every read returns
//! `None` instead of reading past the end.

/// Reads fields front to back; `None` means the bytes ran out.
#[derive(Clone, Debug)]
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    /// How many bytes have been read.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// How many bytes are left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let out = self.buf.get(self.pos..).unwrap_or_default();
        self.pos = self.buf.len();
        out
    }

    pub(crate) fn peek_u8(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    /// An unsigned little-endian integer of `n` bytes (at most 8).
    pub(crate) fn uint(&mut self, n: usize) -> Option<u64> {
        if n > 8 {
            return None;
        }
        let mut raw = [0u8; 8];
        raw.get_mut(..n)?.copy_from_slice(self.bytes(n)?);
        Some(u64::from_le_bytes(raw))
    }

    /// A length-encoded integer (`net_field_length_ll`): one byte below 251, else a
    /// 0xFC/0xFD/0xFE marker and 2, 3 or 8 bytes. 0xFB (SQL NULL) is not a length.
    pub(crate) fn lenenc(&mut self) -> Option<u64> {
        match self.u8()? {
            b @ 0..=250 => Some(u64::from(b)),
            0xFC => self.uint(2),
            0xFD => self.uint(3),
            0xFE => self.uint(8),
            _ => None,
        }
    }

    /// An unsigned variable-length integer of MySQL's serialization library
    /// (`read_varlen_bytes_unsigned`): the number of trailing one bits of the first
    /// byte, plus one, is the length; the value follows those bits, little-endian.
    pub(crate) fn varlen(&mut self) -> Option<u64> {
        let first = self.peek_u8()?;
        let len = first.trailing_ones() as usize + 1;
        let bytes = self.bytes(len)?;
        if len == 9 {
            return u64::from_le_bytes(bytes.get(1..)?.try_into().ok()?).into();
        }
        let mut raw = [0u8; 8];
        raw.get_mut(..len)?.copy_from_slice(bytes);
        Some(u64::from_le_bytes(raw) >> len)
    }

    /// A signed variable-length integer: the low bit is the sign, and a negative
    /// `x` is stored as `-(x + 1)`.
    pub(crate) fn varlen_signed(&mut self) -> Option<i64> {
        let raw = self.varlen()?;
        let magnitude = (raw >> 1) as i64;
        Some(if raw & 1 == 1 { !magnitude } else { magnitude })
    }
}

/// Appends `value` as a length-encoded integer (`net_store_length`).
#[cfg(test)]
pub(crate) fn put_lenenc(out: &mut Vec<u8>, value: u64) {
    match value {
        0..=250 => out.push(value as u8),
        251..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(value as u16).to_le_bytes());
        }
        0x1_0000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(value as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xFE);
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

/// Appends `value` in MySQL's serialization library's unsigned varlen format.
pub(crate) fn put_varlen(out: &mut Vec<u8>, value: u64) {
    let bits = 64 - value.leading_zeros() as usize;
    // 7 value bits per byte, except that 9 bytes hold all 64.
    let len = if bits > 56 {
        9
    } else {
        bits.saturating_sub(1) / 7 + 1
    };
    if len == 9 {
        out.push(0xFF);
        out.extend_from_slice(&value.to_le_bytes());
        return;
    }
    let marker = (1u64 << (len - 1)) - 1;
    let encoded = (value << len) | marker;
    out.extend_from_slice(encoded.to_le_bytes().get(..len).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varlen_matches_the_library_examples() {
        // serialization/readme.md: 65535 in three bytes, "00000111 11111111 11111011".
        let mut out = Vec::new();
        put_varlen(&mut out, 65535);
        assert_eq!(out, [0b1111_1011, 0b1111_1111, 0b0000_0111]);
        assert_eq!(Cursor::new(&out).varlen(), Some(65535));
        // -65535 signed: "00001111 11111111 11101011".
        assert_eq!(
            Cursor::new(&[0b1110_1011, 0b1111_1111, 0b0000_1111]).varlen_signed(),
            Some(-65535)
        );
        assert_eq!(
            Cursor::new(&[0b1111_1011, 0b1111_1111, 0b0000_1111]).varlen_signed(),
            Some(-65536)
        );
    }

    proptest! {
        #[test]
        fn varlen_round_trip(value in any::<u64>()) {
            let mut out = Vec::new();
            put_varlen(&mut out, value);
            let mut cursor = Cursor::new(&out);
            prop_assert_eq!(cursor.varlen(), Some(value));
            prop_assert!(cursor.is_empty());
        }

        #[test]
        fn lenenc_round_trip(value in any::<u64>()) {
            let mut out = Vec::new();
            put_lenenc(&mut out, value);
            let mut cursor = Cursor::new(&out);
            prop_assert_eq!(cursor.lenenc(), Some(value));
            prop_assert!(cursor.is_empty());
        }
    }
}
