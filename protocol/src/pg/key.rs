//! Object keys of PostgreSQL's WAL: timeline history files, complete segments and the
//! pieces of a segment in progress. Each key is built by [`WalKey::format`] and read back by
//! [`WalKey::parse`]. Numbers are fixed-width upper-case hex, so sorting keys as strings
//! sorts WAL by timeline, segment and piece offset.

use crate::archive::key::{KeyError, SourceName, split_source};
use crate::pg::segment::{WalFileName, WalFileNameError, parse_hex8, xlog_file_name};
use crate::pg::timeline::history_file_name;
use crate::pg::{SegmentNo, TimelineId, WalSegSize};

/// What a WAL object under a source holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WalKey {
    /// A timeline's `.history` file.
    History(TimelineId),
    /// A complete WAL segment.
    Segment {
        /// The segment's timeline.
        tli: TimelineId,
        /// The segment's number.
        segno: SegmentNo,
    },
    /// Bytes `[start, end)` of a segment still in progress, as offsets within the segment.
    Piece {
        /// The segment's timeline.
        tli: TimelineId,
        /// The segment's number.
        segno: SegmentNo,
        /// Offset of the first byte held.
        start: u32,
        /// Offset just past the last byte held.
        end: u32,
    },
}

const TIMELINES: &str = "timelines";
const WAL: &str = "wal";
const PARTIAL: &str = ".partial.";

impl WalKey {
    /// The key relative to the store root, e.g. `main/wal/00000001/000000010000000000000003`.
    pub fn format(&self, source: &SourceName, seg: WalSegSize) -> String {
        match *self {
            WalKey::History(tli) => {
                format!("{}{}", timelines_prefix(source), history_file_name(tli))
            }
            WalKey::Segment { tli, segno } => {
                format!(
                    "{}{}",
                    wal_prefix(source, tli),
                    xlog_file_name(tli, segno, seg)
                )
            }
            WalKey::Piece {
                tli,
                segno,
                start,
                end,
            } => format!(
                "{}{}{PARTIAL}{start:08X}-{end:08X}",
                wal_prefix(source, tli),
                xlog_file_name(tli, segno, seg)
            ),
        }
    }

    /// Reads a key relative to the store root back into its source and meaning, for a
    /// source whose segments are `seg` bytes long.
    pub fn parse(key: &str, seg: WalSegSize) -> Result<(SourceName, WalKey), KeyError> {
        let unrecognized = || KeyError::Unrecognized {
            key: key.to_owned(),
        };
        let (source, rest) = split_source(key)?;
        let parsed = match *rest {
            [TIMELINES, name] => match parse_wal_file_name(key, name, seg)? {
                WalFileName::History(tli) => WalKey::History(tli),
                WalFileName::Segment { .. } => return Err(unrecognized()),
            },
            [WAL, dir, name] => {
                let dir_tli = parse_hex8(dir)
                    .and_then(TimelineId::new)
                    .ok_or_else(unrecognized)?;
                let parsed = parse_wal_segment(key, name, seg)?;
                let (WalKey::Segment { tli, .. } | WalKey::Piece { tli, .. }) = parsed else {
                    return Err(unrecognized());
                };
                if tli != dir_tli {
                    return Err(KeyError::TimelineMismatch {
                        key: key.to_owned(),
                    });
                }
                parsed
            }
            _ => return Err(unrecognized()),
        };
        Ok((source, parsed))
    }
}

/// Parses the last component under `wal/<TLI>/`: a segment name, optionally with a piece range.
fn parse_wal_segment(key: &str, name: &str, seg: WalSegSize) -> Result<WalKey, KeyError> {
    let unrecognized = || KeyError::Unrecognized {
        key: key.to_owned(),
    };
    let (file, range) = match name.split_once(PARTIAL) {
        Some((file, range)) => (file, Some(range)),
        None => (name, None),
    };
    let WalFileName::Segment { tli, segno } = parse_wal_file_name(key, file, seg)? else {
        return Err(unrecognized());
    };
    let Some(range) = range else {
        return Ok(WalKey::Segment { tli, segno });
    };
    let (start, end) = range.split_once('-').ok_or_else(unrecognized)?;
    let (Some(start), Some(end)) = (parse_hex8(start), parse_hex8(end)) else {
        return Err(unrecognized());
    };
    if start >= end || u64::from(end) > seg.bytes() {
        return Err(KeyError::BadPieceRange {
            key: key.to_owned(),
            start,
            end,
            seg_bytes: seg.bytes(),
        });
    }
    Ok(WalKey::Piece {
        tli,
        segno,
        start,
        end,
    })
}

/// Parses a WAL file name inside a key, reporting failures against the whole key.
fn parse_wal_file_name(key: &str, name: &str, seg: WalSegSize) -> Result<WalFileName, KeyError> {
    WalFileName::parse(name, seg).map_err(|reason| match reason {
        WalFileNameError::Malformed { .. } => KeyError::Unrecognized {
            key: key.to_owned(),
        },
        reason => KeyError::BadFileName {
            key: key.to_owned(),
            reason,
        },
    })
}

/// The source's timeline history files: `<source>/timelines/`.
pub fn timelines_prefix(source: &SourceName) -> String {
    format!("{source}/{TIMELINES}/")
}

/// The WAL of every timeline of `source`: `<source>/wal/`.
pub fn wal_root_prefix(source: &SourceName) -> String {
    format!("{source}/{WAL}/")
}

/// The WAL of one timeline: `<source>/wal/<TLI %08X>/`.
pub fn wal_prefix(source: &SourceName, tli: TimelineId) -> String {
    format!("{source}/{WAL}/{:08X}/", tli.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEG: WalSegSize = WalSegSize::DEFAULT;

    fn src(name: &str) -> SourceName {
        SourceName::new(name).unwrap()
    }

    fn tli(raw: u32) -> TimelineId {
        TimelineId::new(raw).unwrap()
    }

    #[test]
    fn formats_every_layout() {
        let s = src("main");
        assert_eq!(
            WalKey::History(tli(2)).format(&s, SEG),
            "main/timelines/00000002.history"
        );
        assert_eq!(
            WalKey::Segment {
                tli: tli(1),
                segno: SegmentNo::new(0x1FF)
            }
            .format(&s, SEG),
            "main/wal/00000001/0000000100000001000000FF"
        );
        assert_eq!(
            WalKey::Piece {
                tli: tli(0x1A),
                segno: SegmentNo::new(3),
                start: 0,
                end: 0x15_8000
            }
            .format(&s, SEG),
            "main/wal/0000001A/0000001A0000000000000003.partial.00000000-00158000"
        );
        assert_eq!(timelines_prefix(&s), "main/timelines/");
        assert_eq!(wal_root_prefix(&s), "main/wal/");
        assert_eq!(wal_prefix(&s, tli(0x1A)), "main/wal/0000001A/");
    }

    #[test]
    fn rejects_keys_outside_the_layout() {
        for bad in [
            "",
            "main",
            "main/identity",
            "main/backups/000000010000000003000028/meta",
            "main/timelines/2.history",
            "main/timelines/0000000a.history",
            "main/timelines/000000010000000000000003",
            "main/wal/00000001/00000001.history",
            "main/wal/1/000000010000000000000003",
            "main/wal/00000001/000000010000000000000003.partial",
            "main/wal/00000001/000000010000000000000003.partial.0-10",
            "main/wal/00000001/000000010000000000000003.partial.00000000-0000001a",
            "main/wal/00000001/000000010000000000000003.partial.00000000-00000010-",
            "main/wal/00000001/000000010000000000000003.partial.00000000_00000010",
            "main/wal/00000001/000000010000000000000003.partial.00000000-00000010.partial.00000000-00000010",
            "main/wal/00000001/000000010000000000000003/x",
            "main/wal/00000000/000000000000000000000003",
        ] {
            let err = WalKey::parse(bad, SEG).unwrap_err();
            assert_eq!(err, KeyError::Unrecognized { key: bad.into() }, "{bad}");
            assert!(err.to_string().contains(&format!("\"{bad}\"")));
        }
    }

    #[test]
    fn rejects_bad_ranges_timelines_and_segment_numbers() {
        let bad_ranges = [
            "main/wal/00000001/000000010000000000000003.partial.00000010-00000010",
            "main/wal/00000001/000000010000000000000003.partial.00000010-00000001",
            "main/wal/00000001/000000010000000000000003.partial.00000000-01000001",
        ];
        for bad in bad_ranges {
            assert!(matches!(
                WalKey::parse(bad, SEG),
                Err(KeyError::BadPieceRange { .. })
            ));
        }
        assert!(
            WalKey::parse(
                "main/wal/00000001/000000010000000000000003.partial.00000000-01000000",
                SEG
            )
            .is_ok()
        );
        assert_eq!(
            WalKey::parse("main/wal/00000002/000000010000000000000003", SEG),
            Err(KeyError::TimelineMismatch {
                key: "main/wal/00000002/000000010000000000000003".into()
            })
        );
        let err = WalKey::parse("main/wal/00000001/000000010000000000000100", SEG).unwrap_err();
        assert!(matches!(err, KeyError::BadFileName { .. }));
        assert!(
            err.to_string()
                .starts_with("archive key \"main/wal/00000001/000000010000000000000100\": ")
        );
    }

    fn keys(seg: WalSegSize) -> impl Strategy<Value = WalKey> {
        let tli = (1u32..).prop_map(|t| TimelineId::new(t).unwrap());
        let segno = (0..=u64::MAX / seg.bytes()).prop_map(SegmentNo::new);
        let seg_bytes = u32::try_from(seg.bytes()).unwrap();
        prop_oneof![
            tli.clone().prop_map(WalKey::History),
            (tli.clone(), segno.clone()).prop_map(|(tli, segno)| WalKey::Segment { tli, segno }),
            (tli, segno, 0..seg_bytes, 1..=seg_bytes).prop_map(|(tli, segno, a, b)| {
                let (start, end) = if a < b { (a, b) } else { (b - 1, a + 1) };
                WalKey::Piece {
                    tli,
                    segno,
                    start,
                    end,
                }
            }),
        ]
    }

    fn seg_and_key() -> impl Strategy<Value = (WalSegSize, WalKey)> {
        (20u32..=30).prop_flat_map(|shift| {
            let seg = WalSegSize::new(1 << shift).unwrap();
            (Just(seg), keys(seg))
        })
    }

    fn sources() -> impl Strategy<Value = SourceName> {
        "[a-z0-9][a-z0-9_-]{0,62}".prop_map(|s| SourceName::new(&s).unwrap())
    }

    /// The position a WAL key covers, for checking that string order is position order.
    fn position(key: &WalKey) -> Option<(TimelineId, SegmentNo, u32, u32)> {
        match *key {
            WalKey::Segment { tli, segno } => Some((tli, segno, 0, 0)),
            WalKey::Piece {
                tli,
                segno,
                start,
                end,
            } => Some((tli, segno, start + 1, end)),
            WalKey::History(_) => None,
        }
    }

    proptest! {
        #[test]
        fn round_trip(source in sources(), (seg, key) in seg_and_key()) {
            let text = key.format(&source, seg);
            prop_assert_eq!(WalKey::parse(&text, seg), Ok((source, key)));
        }

        #[test]
        fn sorted_keys_are_sorted_positions(mut wal in proptest::collection::vec(keys(SEG), 1..40)) {
            wal.retain(|k| position(k).is_some());
            let source = src("main");
            let mut by_text: Vec<(String, WalKey)> =
                wal.iter().map(|k| (k.format(&source, SEG), *k)).collect();
            by_text.sort_by(|a, b| a.0.cmp(&b.0));
            let positions: Vec<_> = by_text.iter().map(|(_, k)| position(k)).collect();
            let mut sorted = positions.clone();
            sorted.sort();
            prop_assert_eq!(positions, sorted);
        }

        #[test]
        fn parse_never_panics(key in "\\PC{0,80}") {
            let _ = WalKey::parse(&key, SEG);
        }
    }
}
