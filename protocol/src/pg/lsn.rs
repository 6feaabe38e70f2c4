//! `Lsn`: a byte position in PostgreSQL's write-ahead log.

use std::fmt;
use std::str::FromStr;

use super::segment::{SegmentNo, WalSegSize};

/// A write-ahead log position (PostgreSQL's `XLogRecPtr`), printed as `X/Y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(u64);

impl Lsn {
    /// The invalid position 0/0 (PostgreSQL's `InvalidXLogRecPtr`).
    pub const INVALID: Lsn = Lsn(0);

    /// Wraps a raw 64-bit position.
    pub const fn new(raw: u64) -> Lsn {
        Lsn(raw)
    }

    /// The raw 64-bit position.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Whether this is anything but 0/0.
    pub fn is_valid(self) -> bool {
        self != Lsn::INVALID
    }

    /// The position `bytes` further on, or `None` past the end of the address space.
    pub fn checked_add(self, bytes: u64) -> Option<Lsn> {
        self.0.checked_add(bytes).map(Lsn)
    }

    /// The number of bytes from `earlier` to `self`, or `None` if `earlier` is later.
    pub fn checked_sub(self, earlier: Lsn) -> Option<u64> {
        self.0.checked_sub(earlier.0)
    }

    /// The segment holding this position (PostgreSQL's `XLByteToSeg`).
    pub fn segment_no(self, seg: WalSegSize) -> SegmentNo {
        SegmentNo::new(self.0 / seg.bytes())
    }

    /// The offset of this position inside its segment (PostgreSQL's `XLogSegmentOffset`).
    pub fn segment_offset(self, seg: WalSegSize) -> u64 {
        self.0 % seg.bytes()
    }

    /// This position rounded down to the start of its segment.
    pub fn segment_start(self, seg: WalSegSize) -> Lsn {
        Lsn(self.0 - self.segment_offset(seg))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// A string that is not an LSN in PostgreSQL's `X/Y` notation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid LSN \"{input}\": expected two hexadecimal numbers of up to 8 digits \
     separated by '/', such as 0/16B3748"
)]
pub struct LsnParseError {
    /// The rejected input.
    pub input: String,
}

impl FromStr for Lsn {
    type Err = LsnParseError;

    fn from_str(s: &str) -> Result<Lsn, LsnParseError> {
        let bad = || LsnParseError {
            input: s.to_owned(),
        };
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let hi = parse_half(hi).ok_or_else(bad)?;
        let lo = parse_half(lo).ok_or_else(bad)?;
        Ok(Lsn((u64::from(hi) << 32) | u64::from(lo)))
    }
}

/// Parses one side of `X/Y`: 1 to 8 hex digits, nothing else (no sign, no spaces).
fn parse_half(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn displays_like_postgres() {
        assert_eq!(Lsn::new(0x16B3748).to_string(), "0/16B3748");
        assert_eq!(Lsn::new(0).to_string(), "0/0");
        assert_eq!(Lsn::new(0x1_0000_0000).to_string(), "1/0");
        assert_eq!(Lsn::new(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
    }

    #[test]
    fn parses_upper_and_lower_case() {
        assert_eq!("0/16B3748".parse::<Lsn>().unwrap(), Lsn::new(0x16B3748));
        assert_eq!("a/16b3748".parse::<Lsn>().unwrap(), Lsn::new(0xA_016B_3748));
        assert_eq!(
            "00000001/00000000".parse::<Lsn>().unwrap(),
            Lsn::new(1 << 32)
        );
    }

    #[test]
    fn rejects_bad_input_and_quotes_it() {
        for bad in [
            "",
            "0/",
            "/0",
            "G/1",
            "1/100000000",
            "1//2",
            "1/2/3",
            "+1/2",
            " 1/2",
            "1/2 ",
            "16B3748",
        ] {
            let err = bad.parse::<Lsn>().unwrap_err();
            assert_eq!(err.input, bad);
            assert!(err.to_string().contains(&format!("\"{bad}\"")), "{err}");
        }
    }

    #[test]
    fn segment_arithmetic() {
        let seg = WalSegSize::DEFAULT;
        let lsn = Lsn::new(0x3000158);
        assert_eq!(lsn.segment_no(seg), SegmentNo::new(3));
        assert_eq!(lsn.segment_offset(seg), 0x158);
        assert_eq!(lsn.segment_start(seg), Lsn::new(0x3000000));
        assert_eq!(Lsn::new(0x3000000).segment_start(seg), Lsn::new(0x3000000));
    }

    #[test]
    fn checked_arithmetic() {
        assert_eq!(Lsn::new(10).checked_add(5), Some(Lsn::new(15)));
        assert_eq!(Lsn::new(u64::MAX).checked_add(1), None);
        assert_eq!(Lsn::new(10).checked_sub(Lsn::new(4)), Some(6));
        assert_eq!(Lsn::new(4).checked_sub(Lsn::new(10)), None);
        assert!(!Lsn::INVALID.is_valid());
        assert!(Lsn::new(1).is_valid());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(raw in any::<u64>()) {
            let lsn = Lsn::new(raw);
            prop_assert_eq!(lsn.to_string().parse::<Lsn>(), Ok(lsn));
            prop_assert_eq!(lsn.to_string().to_lowercase().parse::<Lsn>(), Ok(lsn));
        }

        #[test]
        fn segment_start_plus_offset_is_identity(raw in any::<u64>()) {
            let seg = WalSegSize::DEFAULT;
            let lsn = Lsn::new(raw);
            prop_assert_eq!(lsn.segment_start(seg).checked_add(lsn.segment_offset(seg)), Some(lsn));
            prop_assert_eq!(lsn.segment_no(seg).start_lsn(seg), lsn.segment_start(seg));
        }
    }
}
