//! The binlog reader, event decoder and transaction tracker against binlogs
//! written by real MySQL and MariaDB servers (tests/fixtures/mysql-binlogs, see its
//! README). The expected facts were cross-checked with `mariadb-binlog --hexdump`
//! and `mariadb-binlog -vv --base64-output=decode-rows` (event types, offsets, CRCs,
//! GTIDs, times) and, where that tool stops (MySQL 8 event types it does not know),
//! with a separate walk over the raw headers.

// Helpers are test code too: a panic there is a failed assertion.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::BTreeMap;

use jiff::Timestamp;
use logship_protocol::mysql::event::{CHECKSUM_LEN, LOG_EVENT_BINLOG_IN_USE_F, crc32};
use logship_protocol::mysql::{
    BinlogError, BinlogFileName, BinlogPos, BinlogReader, ChecksumAlg, Event, EventData, EventType,
    Gtid, TransactionTracker, TrxGtid, TrxOutcome,
};
use proptest::prelude::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mysql-binlogs");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

/// Every readable fixture with its event type counts (type code, count), as
/// `mariadb-binlog --hexdump` lists them, and whether its events carry CRC32.
/// A fixture: its name, its (type code, count) pairs, whether it has CRC32s.
type Fixture = (&'static str, &'static [(u8, usize)], bool);

const FILES: &[Fixture] = &[
    (
        "binlog_savepoint.000001",
        &[(2, 8), (4, 1), (15, 2), (16, 1)],
        false,
    ),
    (
        "binlog_transaction.000001",
        &[(2, 17), (4, 1), (15, 1), (16, 1)],
        false,
    ),
    (
        "binlog_transaction_with_GTID.000001",
        &[(2, 5), (3, 1), (15, 1), (33, 3), (35, 1)],
        true,
    ),
    (
        "binlog_transaction_with_anonymous_GTID.000001",
        &[(2, 3), (4, 1), (15, 1), (16, 1), (34, 2), (35, 1)],
        true,
    ),
    // mariadb-binlog stops at the PARTIAL_UPDATE_ROWS event; the counts after it
    // come from the header walk.
    (
        "json.binlog.000001",
        &[
            (2, 8),
            (15, 1),
            (16, 6),
            (19, 6),
            (30, 4),
            (31, 1),
            (34, 8),
            (35, 1),
            (39, 1),
        ],
        true,
    ),
    (
        "mariadb-bin.000001",
        &[
            (15, 1),
            (16, 2),
            (19, 2),
            (23, 2),
            (0xa0, 2),
            (0xa1, 1),
            (0xa2, 2),
            (0xa3, 1),
        ],
        true,
    ),
    (
        "mariadb-10.11-binlog.000002",
        &[
            (2, 4),
            (4, 1),
            (15, 1),
            (16, 2),
            (19, 5),
            (23, 3),
            (24, 1),
            (25, 1),
            (0xa0, 5),
            (0xa1, 2),
            (0xa2, 6),
            (0xa3, 1),
        ],
        true,
    ),
    (
        "minimal_row_metadata.000001",
        &[
            (2, 1),
            (4, 1),
            (15, 1),
            (16, 1),
            (19, 1),
            (30, 1),
            (34, 1),
            (35, 1),
        ],
        true,
    ),
    (
        "rpl_atomic_ddl_rollback_full.000001",
        &[(2, 4), (3, 1), (15, 1), (33, 4), (35, 1)],
        true,
    ),
    (
        "ver_trunk_row_v2.001",
        &[
            (2, 24),
            (4, 1),
            (5, 1),
            (9, 1),
            (13, 1),
            (14, 1),
            (15, 1),
            (16, 2),
            (17, 1),
            (18, 1),
            (19, 3),
            (30, 1),
            (31, 1),
            (32, 1),
        ],
        false,
    ),
    (
        "write-full-row.binlog",
        &[(2, 2), (4, 1), (15, 1), (19, 2), (23, 2), (25, 1)],
        false,
    ),
    (
        "binlog_transaction_with_GTID_TAG.000001",
        &[
            (2, 1),
            (4, 1),
            (15, 1),
            (16, 1),
            (19, 1),
            (30, 1),
            (35, 1),
            (42, 1),
        ],
        true,
    ),
    (
        "transaction_compression.000001",
        &[(4, 1), (15, 1), (34, 1), (35, 1), (40, 1)],
        true,
    ),
];

fn counts(events: &[Event]) -> Vec<(u8, usize)> {
    let mut map = BTreeMap::new();
    for e in events {
        *map.entry(e.event_type().0).or_insert(0) += 1;
    }
    map.into_iter().collect()
}

/// Feeds `bytes` in pieces of `chunk` bytes, draining after each.
fn read_chunked(bytes: &[u8], chunk: usize) -> (Vec<Event>, Result<(), BinlogError>) {
    let mut reader = BinlogReader::new();
    let mut events = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        reader.feed(piece);
        loop {
            match reader.next_event() {
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(err) => return (events, Err(err)),
            }
        }
    }
    let end = reader.finish();
    (events, end)
}

#[test]
fn every_fixture_frames_with_the_expected_event_types() {
    for &(name, expected, crc) in FILES {
        let bytes = fixture(name);
        let events = BinlogReader::read_all(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(counts(&events), expected, "{name}");
        // Back to back from offset 4 to the end of the file.
        let mut at = 4;
        for e in &events {
            assert_eq!(e.offset(), at, "{name}");
            at = e.end_offset();
        }
        assert_eq!(at, bytes.len() as u64, "{name}");
        // Each CRC is the zlib CRC32 of the event minus its last 4 bytes.
        for e in &events {
            assert_eq!(e.checksum().is_some(), crc, "{name} at {}", e.offset());
            if let Some(stored) = e.checksum() {
                let mut raw = e.raw().to_vec();
                // A FORMAT_DESCRIPTION's CRC is computed with the in-use flag clear.
                if e.event_type() == EventType::FORMAT_DESCRIPTION {
                    raw[17] &= !(LOG_EVENT_BINLOG_IN_USE_F as u8);
                }
                assert_eq!(stored, crc32(&raw[..raw.len() - CHECKSUM_LEN]), "{name}");
            }
        }
        // The same events whatever the pieces the bytes arrive in.
        for chunk in [1, 7, 19, 4096] {
            let (chunked, end) = read_chunked(&bytes, chunk);
            end.unwrap();
            assert_eq!(chunked, events, "{name} in {chunk}-byte pieces");
        }
    }
}

#[test]
fn flipping_any_byte_of_a_checksummed_event_is_caught_at_its_offset() {
    for &(name, _, crc) in FILES {
        if !crc {
            continue;
        }
        let bytes = fixture(name);
        let events = BinlogReader::read_all(&bytes).unwrap();
        for e in &events {
            // A byte in the body, past the size field: the header stays parseable.
            for at in [e.offset() + 20, e.end_offset() - 1] {
                let mut bad = bytes.clone();
                bad[at as usize] ^= 0x01;
                let err = BinlogReader::read_all(&bad).unwrap_err();
                match &err {
                    BinlogError::Checksum { offset, .. } => assert_eq!(*offset, e.offset()),
                    other => panic!("{name}: byte {at}: {other}"),
                }
                assert!(
                    err.to_string().contains(&format!("offset {}", e.offset())),
                    "{err}"
                );
            }
        }
    }
}

#[test]
fn format_descriptions_are_decoded() {
    let fde = |name: &str| {
        let events = BinlogReader::read_all(&fixture(name)).unwrap();
        match events[0].data() {
            EventData::FormatDescription(f) => (events[0].header().flags, f.clone()),
            other => panic!("{other:?}"),
        }
    };
    let (flags, f) = fde("mariadb-bin.000001");
    assert_eq!(f.binlog_version, 4);
    assert_eq!(
        f.server_version,
        "10.5.15-MariaDB-1:10.5.15+maria~focal-log"
    );
    assert_eq!(f.create_timestamp, 1_650_493_071);
    assert_eq!(f.header_len, 19);
    assert_eq!(f.checksum, Some(ChecksumAlg::Crc32));
    assert!(f.is_mariadb());
    // mariadb-binlog: "this binlog is either in use or was not closed properly".
    assert_eq!(flags & LOG_EVENT_BINLOG_IN_USE_F, LOG_EVENT_BINLOG_IN_USE_F);
    assert_eq!(f.post_header_len(EventType::QUERY), Some(13));
    assert_eq!(f.post_header_len(EventType::MARIADB_GTID), Some(19));

    let (flags, f) = fde("mariadb-10.11-binlog.000002");
    assert_eq!(f.server_version, "10.11.19-MariaDB-0+deb12u1-log");
    assert_eq!(
        flags & LOG_EVENT_BINLOG_IN_USE_F,
        0,
        "closed by FLUSH BINARY LOGS"
    );

    let (_, f) = fde("minimal_row_metadata.000001");
    assert_eq!(f.server_version, "8.0.40");
    assert_eq!(f.checksum, Some(ChecksumAlg::Crc32));
    assert_eq!(f.post_header_lens.len(), 41);

    let (_, f) = fde("binlog_transaction_with_GTID.000001");
    assert!(f.server_version.starts_with("5.6.24"));
    // 5.6's LOG_EVENT_TYPES: up to PREVIOUS_GTIDS_LOG_EVENT (35).
    assert_eq!(f.post_header_lens.len(), 35);
    assert_eq!(f.post_header_len(EventType::GTID), Some(25));

    // Servers older than 5.6.1 write no algorithm byte: no checksums.
    for name in ["binlog_transaction.000001", "binlog_savepoint.000001"] {
        let (_, f) = fde(name);
        assert_eq!(f.checksum, None, "{name}");
        assert!(f.server_version.starts_with("5."), "{name}");
    }
}

#[test]
fn rotate_checkpoint_and_gtid_list_events() {
    let events = BinlogReader::read_all(&fixture("mariadb-10.11-binlog.000002")).unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        last.data(),
        &EventData::Rotate(logship_protocol::mysql::event::Rotate {
            position: 4,
            next_file: "binlog.000003".into()
        })
    );
    let checkpoints: Vec<_> = events
        .iter()
        .filter_map(|e| match e.data() {
            EventData::BinlogCheckpoint { file } => Some(file.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(checkpoints, ["binlog.000001", "binlog.000002"]);
    match events[1].data() {
        EventData::GtidList(list) => assert!(list.gtids.is_empty()),
        other => panic!("{other:?}"),
    }
}

fn transactions(name: &str) -> Vec<(String, i64, u64, TrxOutcome)> {
    let file = BinlogFileName::new(name.rsplit_once('/').map_or(name, |p| p.1))
        .unwrap_or_else(|_| BinlogFileName::new("fixture.000001").unwrap());
    let mut tracker = TransactionTracker::new();
    let mut out = Vec::new();
    for e in BinlogReader::read_all(&fixture(name)).unwrap() {
        let end = BinlogPos::new(file.clone(), e.end_offset());
        if let Some(t) = tracker.push(&e, &end) {
            let gtid = match &t.gtid {
                TrxGtid::MariaDb(g) => g.to_string(),
                TrxGtid::Mysql(g) => g.to_string(),
                TrxGtid::None => "-".into(),
            };
            out.push((
                gtid,
                t.commit_time.as_microsecond(),
                t.end.offset(),
                t.outcome,
            ));
        }
    }
    assert!(!tracker.in_transaction(), "{name}");
    out
}

const S: i64 = 1_000_000;

#[test]
fn mariadb_transactions_match_mariadb_binlog() {
    // GTID 0-1-1 ddl, 0-1-2 ddl, 0-1-3 trans (3 statements, Xid), 0-1-4 ddl, 0-1-5
    // (MyISAM, ends in a COMMIT query), 0-1-6 trans; the rolled-back transaction
    // left nothing in the binlog. All at 261207 3:03:28 (1796612608).
    let t = 1_796_612_608 * S;
    let c = TrxOutcome::Commit;
    assert_eq!(
        transactions("mariadb-10.11-binlog.000002"),
        [
            ("0-1-1".into(), t, 494, c),
            ("0-1-2".into(), t, 684, c),
            ("0-1-3".into(), t, 1242, c),
            ("0-1-4".into(), t, 1400, c),
            ("0-1-5".into(), t, 1652, c),
            ("0-1-6".into(), t, 1875, c),
        ]
    );
    // 220420 22:18:04 and 22:19:55, Xid = 800 and 820.
    assert_eq!(
        transactions("mariadb-bin.000001"),
        [
            ("0-1-1".into(), 1_650_493_084 * S, 702, c),
            ("0-1-2".into(), 1_650_493_195 * S, 1074, c),
        ]
    );
    let events = BinlogReader::read_all(&fixture("mariadb-10.11-binlog.000002")).unwrap();
    let gtids: Vec<(Gtid, u8)> = events
        .iter()
        .filter_map(|e| match e.data() {
            EventData::MariadbGtid(g) => Some((g.gtid, g.flags)),
            _ => None,
        })
        .collect();
    // "ddl" groups: FL_STANDALONE | FL_ALLOW_PARALLEL | FL_DDL; "trans":
    // FL_TRANSACTIONAL | FL_ALLOW_PARALLEL; the MyISAM insert: FL_ALLOW_PARALLEL.
    assert_eq!(
        gtids.iter().map(|g| g.1).collect::<Vec<_>>(),
        [0x29, 0x29, 0x0c, 0x29, 0x08, 0x0c]
    );
}

#[test]
fn mysql_transactions_and_commit_times() {
    let c = TrxOutcome::Commit;
    let u56 = "006c2cf2-b1ea-11e4-9057-8c705a3d3e78";
    let t = 1_423_657_933 * S;
    // 5.6: DDL, BEGIN/INSERT/COMMIT (MyISAM), DDL; times from the ending event.
    assert_eq!(
        transactions("binlog_transaction_with_GTID.000001"),
        [
            (format!("{u56}:1"), t, 297, c),
            (format!("{u56}:2"), t, 603, c),
            (format!("{u56}:3"), t, 766, c),
        ]
    );
    let u57 = "a0205340-db2c-11e7-babd-340286faf52d";
    let t = 1_512_637_037 * S;
    assert_eq!(
        transactions("rpl_atomic_ddl_rollback_full.000001"),
        [
            (format!("{u57}:1"), t, 316, c),
            (format!("{u57}:2"), t, 501, c),
            (format!("{u57}:3"), t, 752, c),
            (format!("{u57}:4"), t, 907, c),
        ]
    );
    let t = 1_423_200_137 * S;
    assert_eq!(
        transactions("binlog_transaction_with_anonymous_GTID.000001"),
        [("-".into(), t, 316, c), ("-".into(), t, 590, c)]
    );
    // 8.0: immediate_commit_timestamp, in microseconds, from each ANONYMOUS_GTID.
    assert_eq!(
        transactions("minimal_row_metadata.000001"),
        [("-".into(), 1_744_984_258_653_949, 451, c)]
    );
    let json = transactions("json.binlog.000001");
    assert_eq!(
        json.iter().map(|t| (t.1, t.2)).collect::<Vec<_>>(),
        [
            (1_615_797_724_673_435, 491),
            (1_615_797_758_837_601, 845),
            (1_615_797_802_733_147, 1195),
            (1_615_797_819_407_448, 1545),
            (1_615_797_834_060_039, 1897),
            (1_615_797_844_691_782, 2389),
            (1_615_797_852_162_781, 3527),
            (1_615_797_869_480_393, 4011),
        ]
    );
    // 8.0.32 with binlog_transaction_compression: the payload ends the transaction.
    let compressed = transactions("transaction_compression.000001");
    assert_eq!(compressed.len(), 1);
    assert_eq!(compressed[0].2, 431);
    assert_eq!(compressed[0].1 / S, 1_695_159_109);
}

#[test]
fn statement_binlogs_without_gtids() {
    // 5.0 and 5.1: BEGIN ... COMMIT/XID groups, and lone statements.
    for name in ["binlog_transaction.000001", "binlog_savepoint.000001"] {
        let events = BinlogReader::read_all(&fixture(name)).unwrap();
        let ends: Vec<u64> = events
            .iter()
            .filter(|e| match e.data() {
                EventData::Xid(_) => true,
                EventData::Query(q) => q.query_text() == "COMMIT",
                _ => false,
            })
            .map(Event::end_offset)
            .collect();
        let trx = transactions(name);
        for end in &ends {
            assert!(trx.iter().any(|t| t.2 == *end), "{name}: {end}");
        }
        assert!(trx.iter().all(|t| t.0 == "-"));
    }
    // SAVEPOINT and ROLLBACK TO SAVEPOINT stay inside their transaction.
    let events = BinlogReader::read_all(&fixture("binlog_savepoint.000001")).unwrap();
    let texts: Vec<String> = events
        .iter()
        .filter_map(|e| match e.data() {
            EventData::Query(q) => Some(q.query_text().into_owned()),
            _ => None,
        })
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.to_uppercase().starts_with("SAVEPOINT")),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with("ROLLBACK TO")),
        "{texts:?}"
    );
    assert_eq!(
        transactions("binlog_savepoint.000001").len(),
        1,
        "one transaction around the savepoints"
    );
}

#[test]
fn mysql_gtid_fields() {
    let events = BinlogReader::read_all(&fixture("minimal_row_metadata.000001")).unwrap();
    let g = events
        .iter()
        .find_map(|e| match e.data() {
            EventData::MysqlGtid(g) => Some(g.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(g.gtid, None);
    assert_eq!(g.immediate_commit_timestamp, Some(1_744_984_258_653_949));
    assert_eq!(g.original_commit_timestamp, g.immediate_commit_timestamp);
    assert_eq!(g.immediate_server_version, Some(80040));
    // transaction_length: the GTID event through the XID, 157..451.
    assert_eq!(g.transaction_length, Some(451 - 157));

    let events = BinlogReader::read_all(&fixture("binlog_transaction_with_GTID.000001")).unwrap();
    match events
        .iter()
        .find(|e| e.event_type() == EventType::PREVIOUS_GTIDS)
        .unwrap()
        .data()
    {
        EventData::PreviousGtids(set) => assert!(set.is_empty()),
        other => panic!("{other:?}"),
    }

    // 9.6 tagged GTID: serialization-library layout, tag "mytag".
    let events =
        BinlogReader::read_all(&fixture("binlog_transaction_with_GTID_TAG.000001")).unwrap();
    let tagged = events
        .iter()
        .find_map(|e| match e.data() {
            EventData::MysqlGtid(g) => Some((e.header().timestamp, g.clone())),
            _ => None,
        })
        .unwrap();
    let gtid = tagged.1.gtid.clone().unwrap();
    assert_eq!(gtid.gno(), 3);
    assert_eq!(tagged.1.immediate_server_version, Some(90600));
    assert_eq!(gtid.tsid().tag().unwrap().as_str(), "mytag");
    assert_eq!(
        gtid.tsid().uuid().to_string(),
        "55778904-0299-11f1-b1b8-4ef0c4956feb"
    );
    let commit = tagged.1.immediate_commit_timestamp.unwrap();
    assert_eq!(commit / 1_000_000, u64::from(tagged.0));
    assert_eq!(tagged.1.transaction_length, Some(541 - 245));
    match events
        .iter()
        .find(|e| e.event_type() == EventType::PREVIOUS_GTIDS)
        .unwrap()
        .data()
    {
        EventData::PreviousGtids(set) => assert_eq!(
            set.to_string(),
            "55778904-0299-11f1-b1b8-4ef0c4956feb:1-13:mytag:1-2"
        ),
        other => panic!("{other:?}"),
    }
    let trx = transactions("binlog_transaction_with_GTID_TAG.000001");
    assert_eq!(trx.len(), 1);
    assert_eq!(trx[0].0, format!("{gtid}"));
    assert_eq!(trx[0].2, 541);
}

#[test]
fn transaction_payload_header_from_a_real_server() {
    let events = BinlogReader::read_all(&fixture("transaction_compression.000001")).unwrap();
    let payload = events
        .iter()
        .find_map(|e| match e.data() {
            EventData::TransactionPayload(p) => Some(p.clone()),
            _ => None,
        })
        .unwrap();
    use logship_protocol::mysql::event::PayloadCompression;
    assert_eq!(payload.compression, PayloadCompression::Zstd);
    assert_eq!(payload.payload_size, 124);
    assert_eq!(payload.uncompressed_size, Some(179));
    // The zstd frame magic.
    assert_eq!(&payload.payload[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
}

#[test]
fn corrupt_relay_log_fails_at_the_corrupt_event() {
    // mariadb-binlog: "Found invalid event in binary log', data_len: 171,
    // event_type: 2 ... Could not read entry at offset 91204".
    let bytes = fixture("corrupt-relay-bin.000624");
    let err = BinlogReader::read_all(&bytes).unwrap_err();
    assert_eq!(err.offset(), 91204, "{err}");
    assert!(
        matches!(&err, BinlogError::Malformed { event_type, .. } if *event_type == EventType::QUERY),
        "{err}"
    );
    assert!(err.to_string().contains("offset 91204"), "{err}");
    // Everything before it is read, as mariadb-binlog reads it.
    let (events, end) = read_chunked(&bytes, 1000);
    assert_eq!(end.unwrap_err(), err);
    assert_eq!(
        counts(&events),
        [(2, 453), (4, 1), (5, 233), (15, 2), (16, 183)]
    );
}

#[test]
fn truncated_event_is_truncation_at_offset_4() {
    let bytes = fixture("binlog_truncated_event.000001");
    let err = BinlogReader::read_all(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            BinlogError::Truncated {
                offset: 4,
                have: 10,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("offset 4"), "{err}");
    // Incrementally it is only "not yet": more bytes may come.
    let mut reader = BinlogReader::new();
    reader.feed(&bytes);
    assert_eq!(reader.next_event(), Ok(None));
}

#[test]
fn a_partial_last_event_waits_and_a_cut_file_is_truncated() {
    let bytes = fixture("mariadb-10.11-binlog.000002");
    let events = BinlogReader::read_all(&bytes).unwrap();
    for e in &events {
        // Cut inside the event: the events before it, then "need more".
        let cut = (e.offset() + e.raw().len() as u64 / 2) as usize;
        let mut reader = BinlogReader::new();
        reader.feed(&bytes[..cut]);
        let mut n = 0;
        while reader.next_event().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(reader.position(), e.offset());
        assert_eq!(n, events.iter().filter(|x| x.offset() < e.offset()).count());
        let err = reader.finish().unwrap_err();
        assert_eq!(err.offset(), e.offset());
        // The rest arrives: the event and all after it.
        reader.feed(&bytes[cut..]);
        let mut rest = Vec::new();
        while let Some(x) = reader.next_event().unwrap() {
            rest.push(x);
        }
        reader.finish().unwrap();
        assert_eq!(rest.len(), events.len() - n);
    }
}

#[test]
fn bad_magic_and_bad_sizes() {
    let err = BinlogReader::read_all(b"\xfebix\0\0").unwrap_err();
    assert!(matches!(err, BinlogError::BadMagic { .. }), "{err}");
    let mut reader = BinlogReader::new();
    reader.feed(b"GET ");
    assert!(reader.next_event().is_err());
    // An event size below the header's, and one beyond 1 GiB.
    let mut bytes = fixture("mariadb-bin.000001");
    bytes[4 + 9..4 + 13].copy_from_slice(&18u32.to_le_bytes());
    let err = BinlogReader::read_all(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            BinlogError::BadEventSize {
                offset: 4,
                size: 18,
                ..
            }
        ),
        "{err}"
    );
    bytes[4 + 9..4 + 13].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut reader = BinlogReader::new();
    reader.feed(&bytes);
    assert!(matches!(
        reader.next_event(),
        Err(BinlogError::BadEventSize { .. })
    ));
}

#[test]
fn commit_times_are_timestamps() {
    // The jiff value an archiver indexes by.
    let trx = transactions("minimal_row_metadata.000001");
    let t = Timestamp::from_microsecond(trx[0].1).unwrap();
    assert_eq!(t.to_string(), "2025-04-18T13:50:58.653949Z");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut data = b"\xfebin".to_vec();
        data.extend_from_slice(&bytes);
        let _ = BinlogReader::read_all(&data);
        let _ = BinlogReader::read_all(&bytes);
    }

    #[test]
    fn mangled_fixtures_never_panic(seed in any::<u64>(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let name = FILES[(seed % FILES.len() as u64) as usize].0;
        let mut bytes = fixture(name);
        for (at, v) in flips {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        let (events, _) = read_chunked(&bytes, 1 + (seed % 97) as usize);
        let mut tracker = TransactionTracker::new();
        let file = BinlogFileName::new("binlog.000001").unwrap();
        for e in &events {
            let _ = tracker.push(e, &BinlogPos::new(file.clone(), e.end_offset()));
        }
    }
}
