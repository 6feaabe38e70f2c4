//! Timelines and the `.history` files that record where each one branched off.

use std::fmt;

use super::lsn::Lsn;

/// A timeline ID (PostgreSQL's `TimeLineID`); never 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimelineId(u32);

impl TimelineId {
    /// The timeline `initdb` starts on.
    pub const FIRST: TimelineId = TimelineId(1);

    /// Wraps a raw ID; `None` for 0, which PostgreSQL never uses.
    pub const fn new(raw: u32) -> Option<TimelineId> {
        if raw == 0 {
            None
        } else {
            Some(TimelineId(raw))
        }
    }

    /// The raw ID.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The timeline a promotion from this one creates, or `None` past the last ID.
    pub fn next(self) -> Option<TimelineId> {
        self.0.checked_add(1).map(TimelineId)
    }
}

impl fmt::Display for TimelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The name of a timeline's history file, e.g. `00000002.history`
/// (PostgreSQL's `TLHistoryFileName`).
pub fn history_file_name(tli: TimelineId) -> String {
    format!("{:08X}.history", tli.0)
}

/// One ancestor in a timeline history: the timeline and where it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The ancestor timeline.
    pub tli: TimelineId,
    /// The first LSN that is no longer on `tli` (the next timeline begins here).
    pub switchpoint: Lsn,
}

/// The ancestry of a timeline, parsed from its `.history` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineHistory {
    tli: TimelineId,
    entries: Vec<HistoryEntry>,
}

/// A `.history` file PostgreSQL itself would refuse to read. The texts state the cause
/// only: the caller knows where the file came from, and so what would fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistoryParseError {
    /// A line does not start with a timeline ID.
    #[error("history file of timeline {history}, line {line}: expected a numeric timeline ID")]
    BadTimeline {
        /// The timeline whose history was being read.
        history: TimelineId,
        /// 1-based line number.
        line: usize,
    },
    /// A line's second field is not an `X/Y` switchpoint.
    #[error(
        "history file of timeline {history}, line {line}: expected a switchpoint such as \
         0/3000158 after the timeline ID"
    )]
    BadSwitchpoint {
        /// The timeline whose history was being read.
        history: TimelineId,
        /// 1-based line number.
        line: usize,
    },
    /// Ancestor timeline IDs do not strictly increase.
    #[error(
        "history file of timeline {history}, line {line}: timeline IDs must increase from \
         line to line"
    )]
    NotIncreasing {
        /// The timeline whose history was being read.
        history: TimelineId,
        /// 1-based line number.
        line: usize,
    },
    /// An ancestor's ID is not below the timeline the history belongs to.
    #[error(
        "history file of timeline {history}, line {line}: ancestor timeline {ancestor} is not \
         below {history}"
    )]
    NotAncestor {
        /// The timeline whose history was being read.
        history: TimelineId,
        /// 1-based line number.
        line: usize,
        /// The offending ancestor ID.
        ancestor: u32,
    },
}

impl TimelineHistory {
    /// Parses the content of timeline `tli`'s history file as PostgreSQL's
    /// `readTimeLineHistory` does: `<parent tli>\t<switchpoint>\t<reason>` lines, with blank
    /// lines and `#` comments skipped and the reason ignored.
    pub fn parse(tli: TimelineId, content: &[u8]) -> Result<TimelineHistory, HistoryParseError> {
        let mut entries: Vec<HistoryEntry> = Vec::new();
        for (index, raw) in content.split(|&b| b == b'\n').enumerate() {
            let line = index + 1;
            // The reason is free text and may not be UTF-8; only the first two fields matter.
            let text = String::from_utf8_lossy(raw);
            let mut fields = text.split_ascii_whitespace();
            let Some(first) = fields.next() else {
                continue;
            };
            if first.starts_with('#') {
                continue;
            }
            let parent = first
                .parse::<u32>()
                .ok()
                .and_then(TimelineId::new)
                .ok_or(HistoryParseError::BadTimeline { history: tli, line })?;
            let switchpoint = fields
                .next()
                .and_then(|f| f.parse::<Lsn>().ok())
                .ok_or(HistoryParseError::BadSwitchpoint { history: tli, line })?;
            if entries.last().is_some_and(|last| last.tli >= parent) {
                return Err(HistoryParseError::NotIncreasing { history: tli, line });
            }
            if parent >= tli {
                return Err(HistoryParseError::NotAncestor {
                    history: tli,
                    line,
                    ancestor: parent.0,
                });
            }
            entries.push(HistoryEntry {
                tli: parent,
                switchpoint,
            });
        }
        Ok(TimelineHistory { tli, entries })
    }

    /// The timeline this history belongs to.
    pub fn tli(&self) -> TimelineId {
        self.tli
    }

    /// The ancestors, oldest first, each with the LSN where it ended.
    pub fn entries(&self) -> &[HistoryEntry] {
        &self.entries
    }

    /// Where ancestor `tli` ended; `None` for this history's own timeline or one not in it.
    pub fn switchpoint(&self, tli: TimelineId) -> Option<Lsn> {
        self.entries
            .iter()
            .find(|e| e.tli == tli)
            .map(|e| e.switchpoint)
    }

    /// The timeline in this history that holds `lsn` (PostgreSQL's `tliOfPointInHistory`):
    /// a switchpoint itself already belongs to the next timeline.
    pub fn timeline_at(&self, lsn: Lsn) -> TimelineId {
        self.entries
            .iter()
            .find(|e| lsn < e.switchpoint)
            .map_or(self.tli, |e| e.tli)
    }

    /// Whether `tli` is this history's timeline or one of its ancestors.
    pub fn contains(&self, tli: TimelineId) -> bool {
        tli == self.tli || self.entries.iter().any(|e| e.tli == tli)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tli(raw: u32) -> TimelineId {
        TimelineId::new(raw).unwrap()
    }

    #[test]
    fn timeline_ids() {
        assert_eq!(TimelineId::new(0), None);
        assert_eq!(TimelineId::FIRST.get(), 1);
        assert_eq!(TimelineId::FIRST.next(), Some(tli(2)));
        assert_eq!(tli(u32::MAX).next(), None);
        assert_eq!(tli(26).to_string(), "26");
        assert_eq!(history_file_name(tli(26)), "0000001A.history");
    }

    #[test]
    fn single_line_history_from_a_promotion() {
        let h = TimelineHistory::parse(tli(2), b"1\t0/3000158\tno recovery target specified\n")
            .unwrap();
        assert_eq!(h.tli(), tli(2));
        assert_eq!(
            h.entries(),
            &[HistoryEntry {
                tli: tli(1),
                switchpoint: Lsn::new(0x3000158)
            }]
        );
        assert_eq!(h.switchpoint(tli(1)), Some(Lsn::new(0x3000158)));
        assert_eq!(h.switchpoint(tli(2)), None);
        assert_eq!(h.switchpoint(tli(3)), None);
        assert_eq!(h.timeline_at(Lsn::new(0x3000157)), tli(1));
        assert_eq!(h.timeline_at(Lsn::new(0x3000158)), tli(2));
        assert!(h.contains(tli(1)) && h.contains(tli(2)) && !h.contains(tli(3)));
    }

    #[test]
    fn multi_line_history_with_comments_and_gaps() {
        let content = b"# written by hand\n\
            1\t0/3000158\tno recovery target specified\n\
            \n\
            2\t0/5000000\tat restore point \"before_drop\"\n\
            4\t1/A0\tbefore 2026-01-02 03:04:05+00\n";
        let h = TimelineHistory::parse(tli(5), content).unwrap();
        let tlis: Vec<u32> = h.entries().iter().map(|e| e.tli.get()).collect();
        assert_eq!(tlis, [1, 2, 4]);
        assert_eq!(h.timeline_at(Lsn::new(0)), tli(1));
        assert_eq!(h.timeline_at(Lsn::new(0x4000000)), tli(2));
        assert_eq!(h.timeline_at(Lsn::new(0x5000000)), tli(4));
        assert_eq!(h.timeline_at(Lsn::new(0x1_0000_00A0)), tli(5));
        assert!(!h.contains(tli(3)));
        assert_eq!(h.switchpoint(tli(4)), Some(Lsn::new(0x1_0000_00A0)));
    }

    #[test]
    fn empty_history_and_non_utf8_reason() {
        assert!(
            TimelineHistory::parse(tli(1), b"")
                .unwrap()
                .entries()
                .is_empty()
        );
        let h = TimelineHistory::parse(tli(2), b"1\t0/10\t\xff\xfe\n").unwrap();
        assert_eq!(h.entries().len(), 1);
    }

    #[test]
    fn rejects_what_postgres_rejects() {
        let parse = |c: &[u8]| TimelineHistory::parse(tli(9), c).unwrap_err();
        assert_eq!(
            parse(b"x\t0/1\n"),
            HistoryParseError::BadTimeline {
                history: tli(9),
                line: 1
            }
        );
        assert_eq!(
            parse(b"1\t0/1\n2\n"),
            HistoryParseError::BadSwitchpoint {
                history: tli(9),
                line: 2
            }
        );
        assert_eq!(
            parse(b"1\tnope\n"),
            HistoryParseError::BadSwitchpoint {
                history: tli(9),
                line: 1
            }
        );
        assert_eq!(
            parse(b"2\t0/1\n2\t0/2\n"),
            HistoryParseError::NotIncreasing {
                history: tli(9),
                line: 2
            }
        );
        assert_eq!(
            parse(b"9\t0/1\n"),
            HistoryParseError::NotAncestor {
                history: tli(9),
                line: 1,
                ancestor: 9
            }
        );
        // The cause only: the caller knows whether the file came from the server or the store.
        assert_eq!(
            parse(b"1\tnope\n").to_string(),
            "history file of timeline 9, line 1: expected a switchpoint such as 0/3000158 after \
             the timeline ID"
        );
        assert!(matches!(
            parse(b"0\t0/1\n"),
            HistoryParseError::BadTimeline { .. }
        ));
    }
}
