//! The WAL record reader and the commit decoder against WAL captured from a
//! real PostgreSQL 15, checked record by record against `pg_waldump`'s view of
//! the same bytes (tests/fixtures/pg15-wal, see its README).

// Helpers are test code too: a panic there is a failed assertion.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::io::Read;
use std::sync::OnceLock;

use logship_protocol::pg::walrecord::{
    WalDecodeError, WalRecord, WalRecordReader, next_record_start,
};
use logship_protocol::pg::xact::{XactKind, decode_xact};
use logship_protocol::pg::{Lsn, WalSegSize};
use proptest::prelude::*;

mod support;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pg15-wal");
const SEGMENTS: [&str; 3] = [
    "000000010000000000000007",
    "000000010000000000000008",
    "000000010000000000000009",
];
/// Where the first fixture segment starts.
const FIRST: u64 = 0x70_0000;
const SEG: u64 = 1 << 20;
const PAGE: u64 = 8192;

fn seg() -> WalSegSize {
    WalSegSize::new(SEG).unwrap()
}

/// The three segments, back to back, starting at [`FIRST`].
fn wal() -> &'static [u8] {
    static WAL: OnceLock<Vec<u8>> = OnceLock::new();
    WAL.get_or_init(|| {
        let mut all = Vec::new();
        for name in SEGMENTS {
            let file = std::fs::File::open(format!("{FIXTURES}/{name}.lz4")).unwrap();
            let mut segment = Vec::new();
            lz4_flex::frame::FrameDecoder::new(file)
                .read_to_end(&mut segment)
                .unwrap();
            assert_eq!(segment.len() as u64, SEG, "{name}");
            all.extend(segment);
        }
        all
    })
}

/// One line of `pg_waldump` output.
#[derive(Debug)]
struct Dumped {
    rmgr: String,
    tx: u32,
    lsn: Lsn,
    desc: String,
}

/// The records `pg_waldump` listed, and where it found the end of WAL.
fn dump(file: &str) -> (Vec<Dumped>, Lsn) {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{file}")).unwrap();
    let mut records = Vec::new();
    let mut end = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("rmgr: ") {
            let field = |name: &str, stop: &str| {
                let from = rest.find(name).unwrap() + name.len();
                let to = from + rest[from..].find(stop).unwrap();
                rest[from..to].trim().to_owned()
            };
            records.push(Dumped {
                rmgr: rest[..rest.find(" len").unwrap()].trim().to_owned(),
                tx: field("tx:", ",").parse().unwrap(),
                lsn: field("lsn:", ",").parse().unwrap(),
                desc: rest[rest.find("desc: ").unwrap() + 6..].to_owned(),
            });
        } else if let Some((_, rest)) = line.split_once("invalid record length at ") {
            end = Some(rest[..rest.find(':').unwrap()].parse().unwrap());
        } else {
            panic!("unexpected pg_waldump line: {line}");
        }
    }
    (records, end.unwrap())
}

/// PostgreSQL 15's resource manager ids (rmgrlist.h) by `pg_waldump` name.
fn rmid(name: &str) -> u8 {
    const NAMES: [&str; 22] = [
        "XLOG",
        "Transaction",
        "Storage",
        "CLOG",
        "Database",
        "Tablespace",
        "MultiXact",
        "RelMap",
        "Standby",
        "Heap2",
        "Heap",
        "Btree",
        "Hash",
        "Gin",
        "Gist",
        "Sequence",
        "SPGist",
        "BRIN",
        "CommitTs",
        "ReplicationOrigin",
        "Generic",
        "LogicalMessage",
    ];
    NAMES.iter().position(|n| *n == name).unwrap() as u8
}

fn read(
    start: u64,
    bytes: &[u8],
    chunks: &[usize],
) -> (Vec<WalRecord>, Result<(), WalDecodeError>, WalRecordReader) {
    support::read(start, seg(), bytes, chunks)
}

/// The fixture read in whole segments: the reference for the other tests.
fn clean() -> &'static [WalRecord] {
    static CLEAN: OnceLock<Vec<WalRecord>> = OnceLock::new();
    CLEAN.get_or_init(|| {
        let (records, result, _) = read(FIRST, wal(), &[SEG as usize]);
        result.unwrap();
        records
    })
}

fn corrupted(at: u64, xor: u8) -> Vec<u8> {
    let mut bytes = wal().to_vec();
    bytes[(at - FIRST) as usize] ^= xor;
    bytes
}

#[test]
fn every_record_matches_pg_waldump() {
    let (dumped, end) = dump("waldump.txt");
    let records = clean();
    assert_eq!(records.len(), dumped.len());
    for (record, dumped) in records.iter().zip(&dumped) {
        assert_eq!(record.lsn, dumped.lsn, "{dumped:?}");
        assert_eq!(record.rmid, rmid(&dumped.rmgr), "{dumped:?}");
        assert_eq!(record.xid, dumped.tx, "{dumped:?}");
    }
    let (_, _, reader) = read(FIRST, wal(), &[SEG as usize]);
    assert_eq!(reader.end_of_wal(), Some(end));
}

#[test]
fn end_lsn_is_where_the_next_record_starts() {
    for pair in clean().windows(2) {
        let (record, next) = (&pair[0], &pair[1]);
        let end = record.end_lsn.as_u64();
        let header = match end {
            e if e % SEG == 0 => 40,
            e if e % PAGE == 0 => 24,
            _ => 0,
        };
        assert_eq!(next.lsn.as_u64(), end + header, "after {}", record.lsn);
    }
}

#[test]
fn fixture_covers_the_hard_cases() {
    let records = clean();
    let spans = |r: &&WalRecord| r.end_lsn.as_u64() - r.lsn.as_u64() > PAGE;
    assert!(
        records.iter().any(|r| spans(&r)),
        "a record longer than a page"
    );
    assert!(
        records
            .iter()
            .any(|r| r.lsn.as_u64() / SEG != (r.end_lsn.as_u64() - 1) / SEG && r.rmid != 0),
        "a record that crosses a segment boundary"
    );
    assert!(
        records.iter().any(|r| PAGE - r.lsn.as_u64() % PAGE < 24),
        "a record header split across pages"
    );
    assert!(
        records.iter().any(|r| r.rmid == 0 && r.info & 0xF0 == 0x40),
        "an XLOG_SWITCH"
    );
    assert!(
        records.iter().any(|r| r.main_data().len() > 255),
        "main data longer than 255 bytes (XLR_BLOCK_ID_DATA_LONG)"
    );
}

/// `COMMIT 2026-11-21 13:36:41.743892 UTC` → microseconds since the Unix epoch.
fn waldump_time(text: &str) -> i64 {
    let mut parts = text.split(' ');
    let (date, time, zone) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    assert_eq!(zone.trim_end_matches(';'), "UTC");
    let ymd: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (hms, micros) = time.split_once('.').unwrap();
    let hms: Vec<i64> = hms.split(':').map(|p| p.parse().unwrap()).collect();
    let days = days_from_civil(ymd[0], ymd[1], ymd[2]);
    (days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2]) * 1_000_000
        + micros.parse::<i64>().unwrap()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[test]
fn commit_and_abort_events_match_pg_waldump() {
    let (dumped, _) = dump("waldump-xact.txt");
    let mut expected = Vec::new();
    for line in &dumped {
        let (op, rest) = line.desc.split_once(' ').unwrap();
        let (kind, xid, time) = match op {
            "COMMIT" => (XactKind::Commit, line.tx, rest),
            "ABORT" => (XactKind::Abort, line.tx, rest),
            "COMMIT_PREPARED" | "ABORT_PREPARED" => {
                let (xid, time) = rest.split_once(": ").unwrap();
                let kind = if op == "COMMIT_PREPARED" {
                    XactKind::CommitPrepared
                } else {
                    XactKind::AbortPrepared
                };
                (kind, xid.parse().unwrap(), time)
            }
            "PREPARE" => continue,
            other => panic!("unexpected transaction record {other}"),
        };
        expected.push((line.lsn, xid, kind, waldump_time(time)));
    }
    let events: Vec<_> = clean()
        .iter()
        .filter_map(|r| decode_xact(r).unwrap())
        .map(|e| (e.lsn, e.xid, e.kind, e.xact_time.to_unix_micros()))
        .collect();
    assert_eq!(events, expected);
    for kind in [
        XactKind::Commit,
        XactKind::Abort,
        XactKind::CommitPrepared,
        XactKind::AbortPrepared,
    ] {
        assert!(
            events.iter().any(|e| e.2 == kind),
            "no {kind:?} in the fixture"
        );
    }
}

#[test]
fn starts_at_a_segment_that_opens_with_a_continuation() {
    let start = FIRST + SEG;
    let (records, result, _) = read(start, &wal()[SEG as usize..], &[SEG as usize]);
    result.unwrap();
    let expected: Vec<_> = clean().iter().filter(|r| r.lsn.as_u64() >= start).collect();
    assert_eq!(records.iter().collect::<Vec<_>>(), expected);
    // The segment's first record is the one after the 16 KB commit that crossed into it.
    let crossing = clean()
        .iter()
        .find(|r| r.lsn.as_u64() < start && r.end_lsn.as_u64() > start)
        .unwrap();
    assert!(
        crossing.end_lsn.as_u64() - start > PAGE,
        "continues over more than a page"
    );
    assert_eq!(records[0].lsn, crossing.end_lsn);
}

#[test]
fn starts_at_any_page() {
    let switch = clean()
        .iter()
        .find(|r| r.rmid == 0 && r.info & 0xF0 == 0x40)
        .unwrap();
    for page in (0..3 * SEG / PAGE).step_by(23) {
        let start = FIRST + page * PAGE;
        if (switch.lsn.as_u64()..switch.end_lsn.as_u64()).contains(&start) {
            // Pages in the padding after a switch hold no records at all.
            continue;
        }
        let (records, result, _) = read(start, &wal()[(page * PAGE) as usize..], &[65_536]);
        result.unwrap();
        let expected: Vec<_> = clean().iter().filter(|r| r.lsn.as_u64() >= start).collect();
        assert_eq!(
            records.iter().collect::<Vec<_>>(),
            expected,
            "from page {page}"
        );
    }
}

#[test]
fn flipped_byte_in_a_record_is_a_crc_error_naming_it() {
    let (dumped, _) = dump("waldump-xact.txt");
    let commit = dumped
        .iter()
        .find(|d| d.desc.starts_with("COMMIT 2"))
        .unwrap();
    let lsn = commit.lsn.as_u64();
    // Byte 30 is inside xact_time, in the main data.
    let (records, result, reader) = read(FIRST, &corrupted(lsn + 30, 0x01), &[SEG as usize]);
    let err = result.unwrap_err();
    assert!(
        matches!(err, WalDecodeError::Crc { lsn: l, .. } if l == commit.lsn),
        "{err}"
    );
    assert!(err.to_string().contains(&commit.lsn.to_string()), "{err}");
    let before: Vec<_> = clean()
        .iter()
        .take_while(|r| r.lsn.as_u64() < lsn)
        .collect();
    assert_eq!(records.iter().collect::<Vec<_>>(), before);
    assert_eq!(reader.end_of_wal(), None);
}

#[test]
fn flipped_byte_in_a_continuation_is_a_crc_error_naming_the_record() {
    let crossing = clean()
        .iter()
        .find(|r| r.lsn.as_u64() < FIRST + SEG && r.end_lsn.as_u64() > FIRST + SEG)
        .unwrap();
    let (_, result, _) = read(FIRST, &corrupted(FIRST + SEG + 40 + 100, 0x80), &[4096]);
    assert!(
        matches!(result, Err(WalDecodeError::Crc { lsn, .. }) if lsn == crossing.lsn),
        "{result:?}"
    );
}

#[test]
fn length_flipped_to_zero_is_the_end_of_wal() {
    // A 34-byte record: flipping the bits of 0x22 in xl_tot_len leaves 0, which
    // is exactly what an unwritten tail looks like.
    let (dumped, _) = dump("waldump-xact.txt");
    let commit = dumped
        .iter()
        .find(|d| d.desc.starts_with("COMMIT 2"))
        .unwrap();
    let lsn = commit.lsn.as_u64();
    assert_eq!(wal()[(lsn - FIRST) as usize], 34);
    let (records, result, reader) = read(FIRST, &corrupted(lsn, 34), &[SEG as usize]);
    result.unwrap();
    let before: Vec<_> = clean()
        .iter()
        .take_while(|r| r.lsn.as_u64() < lsn)
        .collect();
    assert_eq!(records.iter().collect::<Vec<_>>(), before);
    assert_eq!(reader.end_of_wal(), Some(commit.lsn));
}

#[test]
fn wrong_length_of_a_crossing_record_is_caught_at_the_next_page() {
    let crossing = clean()
        .iter()
        .find(|r| r.lsn.as_u64() < FIRST + SEG && r.end_lsn.as_u64() > FIRST + SEG)
        .unwrap();
    // 8 more in xl_tot_len: the next page's xlp_rem_len no longer adds up.
    let mut bytes = wal().to_vec();
    let at = (crossing.lsn.as_u64() - FIRST) as usize;
    let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    bytes[at..at + 4].copy_from_slice(&(len + 8).to_le_bytes());
    let (_, result, _) = read(FIRST, &bytes, &[SEG as usize]);
    match result {
        Err(WalDecodeError::ContinuationLength {
            page,
            found,
            expected,
        }) => {
            assert_eq!(page, Lsn::new(FIRST + SEG));
            assert_eq!(expected, found + 8);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn page_with_a_foreign_address_is_the_end_of_wal() {
    let page = FIRST + 0x40_000;
    let mut bytes = wal().to_vec();
    // xlp_pageaddr of a page from an older, recycled segment.
    let at = (page - FIRST) as usize + 8;
    bytes[at..at + 8].copy_from_slice(&0x24_0000u64.to_le_bytes());
    let (records, result, reader) = read(FIRST, &bytes, &[SEG as usize]);
    result.unwrap();
    let before: Vec<_> = clean()
        .iter()
        .filter(|r| r.end_lsn.as_u64() <= page)
        .collect();
    assert_eq!(records.iter().collect::<Vec<_>>(), before);
    let cut = clean()
        .iter()
        .find(|r| r.lsn.as_u64() < page && r.end_lsn.as_u64() > page)
        .map_or(page, |r| r.lsn.as_u64());
    assert_eq!(reader.end_of_wal(), Some(Lsn::new(cut)));
}

#[test]
fn page_with_a_foreign_magic_is_an_error() {
    let page = FIRST + 0x40_000;
    let (_, result, _) = read(FIRST, &corrupted(page + 1, 0x01), &[SEG as usize]);
    assert_eq!(
        result,
        Err(WalDecodeError::BadMagic {
            page: Lsn::new(page),
            magic: 0xD010
        })
    );
}

#[test]
fn segment_size_other_than_the_servers_is_an_error() {
    let mut reader = WalRecordReader::new(Lsn::new(FIRST), WalSegSize::new(2 * SEG).unwrap());
    reader.feed(&wal()[..PAGE as usize]);
    let err = reader.next_record().unwrap_err();
    assert_eq!(
        err,
        WalDecodeError::SegmentSizeMismatch {
            page: Lsn::new(FIRST),
            found: SEG as u32,
            expected: 2 * SEG
        }
    );
    assert_eq!(
        err.to_string(),
        "WAL segment at 0/700000 has 1048576-byte segments, but the reader expects 2097152"
    );
    // The error sticks.
    assert_eq!(reader.next_record(), Err(err));
}

/// The first record that does not lie wholly before `pos`: where a corruption at `pos` lands.
fn record_at(pos: u64) -> Option<&'static WalRecord> {
    clean().iter().find(|r| r.end_lsn.as_u64() > pos)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_chunking_gives_the_same_records(chunks in prop::collection::vec(1usize..20_000, 1..50)) {
        let (records, result, _) = read(FIRST, wal(), &chunks);
        prop_assert_eq!(result, Ok(()));
        prop_assert_eq!(records.as_slice(), clean());
    }

    #[test]
    fn truncated_input_yields_a_prefix(cut in 0..3 * SEG as usize, chunk in 1usize..70_000) {
        let (records, result, _) = read(FIRST, &wal()[..cut], &[chunk]);
        prop_assert_eq!(result, Ok(()));
        prop_assert!(clean().starts_with(&records));
        let complete = clean().iter().filter(|r| r.end_lsn.as_u64() <= FIRST + cut as u64).count();
        prop_assert!(records.len() >= complete);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn flipped_byte_never_panics_and_keeps_the_records_before_it(
        at in 0..SEG + 0x3000,
        xor in 1u8..=255,
    ) {
        let pos = FIRST + at;
        let (records, result, _) = read(FIRST, &corrupted(pos, xor), &[SEG as usize]);
        prop_assert!(clean().starts_with(&records));
        if let Err(WalDecodeError::Crc { lsn, .. }) = result {
            prop_assert_eq!(Some(lsn), record_at(pos).map(|r| r.lsn));
        }
    }

    #[test]
    fn random_bytes_after_a_valid_page_header_never_panic(
        garbage in prop::collection::vec(any::<u8>(), 0..3 * PAGE as usize),
        chunk in 1usize..9000,
    ) {
        let mut bytes = wal()[..40].to_vec();
        bytes.extend(garbage);
        let _ = read(FIRST, &bytes, &[chunk]);
    }

    #[test]
    fn random_bytes_after_a_valid_record_never_panic(
        garbage in prop::collection::vec(any::<u8>(), 0..3 * PAGE as usize),
    ) {
        let first_end = (clean()[0].end_lsn.as_u64() - FIRST) as usize;
        let mut bytes = wal()[..first_end].to_vec();
        bytes.extend(garbage);
        let (records, _, _) = read(FIRST, &bytes, &[4096]);
        prop_assert!(!records.is_empty());
    }
}

/// Each record starts where the one before it lets the next one start: right after it, or
/// past the page header when it ends on a page boundary.
#[test]
fn each_record_starts_where_the_previous_one_lets_the_next_start() {
    let mut reader = WalRecordReader::new(Lsn::new(FIRST), seg());
    reader.feed(wal());
    let mut previous_end = None;
    let (mut pairs, mut on_boundary) = (0, 0);
    while let Some(record) = reader.next_record().unwrap() {
        if let Some(end) = previous_end {
            assert_eq!(record.lsn, next_record_start(end, seg()), "after {end}");
            pairs += 1;
            if end.as_u64() % PAGE == 0 {
                on_boundary += 1;
            }
        }
        previous_end = Some(record.end_lsn);
    }
    assert!(pairs > 1000, "{pairs} pairs");
    // The page-header case, in real WAL too.
    assert!(on_boundary >= 1, "no record ends on a page boundary");
}
