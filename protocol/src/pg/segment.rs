//! WAL segments: the segment size, segment numbers and WAL file names.

use std::fmt;

use super::lsn::Lsn;
use super::timeline::{TimelineId, history_file_name};

/// The WAL segment size of a cluster (`wal_segment_size`, fixed at `initdb`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WalSegSize(u32);

/// A segment size PostgreSQL would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid WAL segment size {bytes} bytes: it must be a power of two from 1 MiB to 1 GiB \
     (check the server's wal_segment_size)"
)]
pub struct WalSegSizeError {
    /// The rejected size in bytes.
    pub bytes: u64,
}

impl WalSegSize {
    /// PostgreSQL's default, 16 MiB.
    pub const DEFAULT: WalSegSize = WalSegSize(16 * 1024 * 1024);

    const MIN: u64 = 1024 * 1024;
    const MAX: u64 = 1024 * 1024 * 1024;

    /// Validates a size as PostgreSQL's `IsValidWalSegSize` does.
    pub fn new(bytes: u64) -> Result<WalSegSize, WalSegSizeError> {
        if !bytes.is_power_of_two() || !(Self::MIN..=Self::MAX).contains(&bytes) {
            return Err(WalSegSizeError { bytes });
        }
        u32::try_from(bytes)
            .map(WalSegSize)
            .map_err(|_| WalSegSizeError { bytes })
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        u64::from(self.0)
    }

    /// How many segments share one "xlog id", the middle part of a file name
    /// (PostgreSQL's `XLogSegmentsPerXLogId`).
    pub fn segments_per_xlog_id(self) -> u64 {
        0x1_0000_0000 / self.bytes()
    }
}

/// A segment's number: its start LSN divided by the segment size (PostgreSQL's `XLogSegNo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SegmentNo(u64);

impl SegmentNo {
    /// Wraps a raw segment number.
    pub const fn new(raw: u64) -> SegmentNo {
        SegmentNo(raw)
    }

    /// The raw segment number.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The following segment.
    pub fn next(self) -> SegmentNo {
        SegmentNo(self.0.saturating_add(1))
    }

    /// The LSN of this segment's first byte (PostgreSQL's `XLogSegNoOffsetToRecPtr` at offset 0).
    pub fn start_lsn(self, seg: WalSegSize) -> Lsn {
        Lsn::new(self.0.saturating_mul(seg.bytes()))
    }

    /// The LSN just past this segment: the start of the next one.
    pub fn end_lsn(self, seg: WalSegSize) -> Lsn {
        self.next().start_lsn(seg)
    }
}

impl fmt::Display for SegmentNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The file name of a WAL segment, e.g. `000000010000000000000003`
/// (PostgreSQL's `XLogFileName`).
pub fn xlog_file_name(tli: TimelineId, segno: SegmentNo, seg: WalSegSize) -> String {
    let per_id = seg.segments_per_xlog_id();
    format!(
        "{:08X}{:08X}{:08X}",
        tli.get(),
        segno.as_u64() / per_id,
        segno.as_u64() % per_id
    )
}

/// A file name PostgreSQL keeps in `pg_wal` and asks `restore_command` for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WalFileName {
    /// A WAL segment, e.g. `000000010000000000000003`.
    Segment {
        /// The timeline the segment belongs to.
        tli: TimelineId,
        /// The segment's number.
        segno: SegmentNo,
    },
    /// A timeline history file, e.g. `00000002.history`.
    History(TimelineId),
}

/// A name that is not a WAL segment or timeline history file name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WalFileNameError {
    /// Neither 24 upper-case hex digits nor `XXXXXXXX.history`.
    #[error(
        "\"{name}\" is not a WAL file name: expected 24 upper-case hex digits \
         (a segment) or 8 followed by \".history\""
    )]
    Malformed {
        /// The rejected name.
        name: String,
    },
    /// The name's timeline is 0, which PostgreSQL never uses.
    #[error("\"{name}\" names timeline 0, which does not exist (timelines start at 1)")]
    TimelineZero {
        /// The rejected name.
        name: String,
    },
    /// The low part of a segment name is out of range for the segment size.
    #[error(
        "\"{name}\" is not a segment of a cluster with {seg_bytes}-byte segments: its last 8 \
         digits must be below {per_id:X} (check wal_segment_size)"
    )]
    SegmentOutOfRange {
        /// The rejected name.
        name: String,
        /// The segment size the name was checked against.
        seg_bytes: u64,
        /// Segments per xlog id at that size.
        per_id: u64,
    },
}

impl WalFileName {
    /// Parses a segment or history file name; `seg` decides which segment a name denotes.
    pub fn parse(name: &str, seg: WalSegSize) -> Result<WalFileName, WalFileNameError> {
        let malformed = || WalFileNameError::Malformed {
            name: name.to_owned(),
        };
        let timeline = |raw: u32| {
            TimelineId::new(raw).ok_or_else(|| WalFileNameError::TimelineZero {
                name: name.to_owned(),
            })
        };
        if let Some(tli) = name.strip_suffix(".history") {
            let tli = parse_hex8(tli).ok_or_else(malformed)?;
            return Ok(WalFileName::History(timeline(tli)?));
        }
        let (tli, rest) = name.split_at_checked(8).ok_or_else(malformed)?;
        let (hi, lo) = rest.split_at_checked(8).ok_or_else(malformed)?;
        let (tli, hi, lo) = match (parse_hex8(tli), parse_hex8(hi), parse_hex8(lo)) {
            (Some(tli), Some(hi), Some(lo)) => (tli, u64::from(hi), u64::from(lo)),
            _ => return Err(malformed()),
        };
        let per_id = seg.segments_per_xlog_id();
        if lo >= per_id {
            return Err(WalFileNameError::SegmentOutOfRange {
                name: name.to_owned(),
                seg_bytes: seg.bytes(),
                per_id,
            });
        }
        Ok(WalFileName::Segment {
            tli: timeline(tli)?,
            segno: SegmentNo::new(hi * per_id + lo),
        })
    }

    /// The file name back; segment names depend on the segment size, hence no `Display`.
    pub fn file_name(&self, seg: WalSegSize) -> String {
        match *self {
            WalFileName::Segment { tli, segno } => xlog_file_name(tli, segno, seg),
            WalFileName::History(tli) => history_file_name(tli),
        }
    }
}

/// Parses exactly 8 upper-case hex digits, the fixed width PostgreSQL and the archive use
/// for every number in a file name or key.
pub(crate) fn parse_hex8(s: &str) -> Option<u32> {
    if s.len() != 8 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tli(raw: u32) -> TimelineId {
        TimelineId::new(raw).unwrap()
    }

    #[test]
    fn segment_sizes() {
        assert_eq!(WalSegSize::DEFAULT.bytes(), 16 * 1024 * 1024);
        assert_eq!(WalSegSize::DEFAULT.segments_per_xlog_id(), 256);
        assert_eq!(
            WalSegSize::new(1 << 20).unwrap().segments_per_xlog_id(),
            4096
        );
        assert_eq!(WalSegSize::new(1 << 30).unwrap().segments_per_xlog_id(), 4);
        for bad in [0, 1, 512 * 1024, 3 << 20, 2 << 30, u64::MAX] {
            let err = WalSegSize::new(bad).unwrap_err();
            assert_eq!(err.bytes, bad);
        }
    }

    #[test]
    fn segment_numbers() {
        let seg = WalSegSize::DEFAULT;
        let s = SegmentNo::new(3);
        assert_eq!(s.start_lsn(seg), Lsn::new(0x300_0000));
        assert_eq!(s.end_lsn(seg), Lsn::new(0x400_0000));
        assert_eq!(s.next(), SegmentNo::new(4));
        assert_eq!(s.to_string(), "3");
    }

    #[test]
    fn file_names_match_postgres() {
        let seg = WalSegSize::DEFAULT;
        assert_eq!(
            xlog_file_name(tli(1), SegmentNo::new(3), seg),
            "000000010000000000000003"
        );
        // 0x1FF = xlog id 1, segment 0xFF with 16 MiB segments.
        assert_eq!(
            xlog_file_name(tli(0x2A), SegmentNo::new(0x1FF), seg),
            "0000002A00000001000000FF"
        );
        let big = WalSegSize::new(1 << 30).unwrap();
        assert_eq!(
            xlog_file_name(tli(1), SegmentNo::new(5), big),
            "000000010000000100000001"
        );
    }

    #[test]
    fn parses_segment_and_history_names() {
        let seg = WalSegSize::DEFAULT;
        assert_eq!(
            WalFileName::parse("0000002A00000001000000FF", seg),
            Ok(WalFileName::Segment {
                tli: tli(0x2A),
                segno: SegmentNo::new(0x1FF)
            })
        );
        assert_eq!(
            WalFileName::parse("00000002.history", seg),
            Ok(WalFileName::History(tli(2)))
        );
        assert_eq!(
            WalFileName::History(tli(0x1A)).file_name(seg),
            "0000001A.history"
        );
    }

    #[test]
    fn rejects_bad_names() {
        let seg = WalSegSize::DEFAULT;
        for bad in [
            "",
            "00000001000000000000000",
            "0000000100000000000000030",
            "0000000100000000000000ff",
            "000000010000000000000003.partial",
            "0000000g0000000000000003",
            "2.history",
            "0000000a.history",
            "00000002.HISTORY",
            "00000001000000000000000\u{e9}",
            "+0000001000000000000003",
        ] {
            assert_eq!(
                WalFileName::parse(bad, seg),
                Err(WalFileNameError::Malformed { name: bad.into() }),
                "{bad}"
            );
        }
        assert!(matches!(
            WalFileName::parse("000000000000000000000003", seg),
            Err(WalFileNameError::TimelineZero { .. })
        ));
        assert!(matches!(
            WalFileName::parse("00000000.history", seg),
            Err(WalFileNameError::TimelineZero { .. })
        ));
        let err = WalFileName::parse("000000010000000000000100", seg).unwrap_err();
        assert!(matches!(err, WalFileNameError::SegmentOutOfRange { .. }));
        assert!(err.to_string().contains("\"000000010000000000000100\""));
    }

    fn seg_sizes() -> impl Strategy<Value = WalSegSize> {
        (20u32..=30).prop_map(|shift| WalSegSize::new(1 << shift).unwrap())
    }

    proptest! {
        #[test]
        fn segment_name_round_trip(seg in seg_sizes(), t in 1u32.., raw in any::<u64>()) {
            let segno = SegmentNo::new(raw % (u64::MAX / seg.bytes() + 1));
            let name = WalFileName::Segment { tli: tli(t), segno };
            let text = name.file_name(seg);
            prop_assert_eq!(text.len(), 24);
            prop_assert_eq!(WalFileName::parse(&text, seg), Ok(name));
        }

        #[test]
        fn history_name_round_trip(t in 1u32..) {
            let name = WalFileName::History(tli(t));
            prop_assert_eq!(WalFileName::parse(&name.file_name(WalSegSize::DEFAULT), WalSegSize::DEFAULT), Ok(name));
        }
    }
}
