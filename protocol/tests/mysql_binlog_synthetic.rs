//! Events built byte by byte from the servers' layouts, for what the captured
//! binlogs lack: a MySQL 8 TRANSACTION_PAYLOAD, the start of a resumed dump stream
//! (fake ROTATE, re-sent FORMAT_DESCRIPTION, heartbeats), rollbacks and XA.

// Helpers are test code too: a panic there is a failed assertion.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use bytes::{Bytes, BytesMut};
use logship_protocol::mysql::event::{LOG_EVENT_ARTIFICIAL_F, PayloadCompression, crc32};
use logship_protocol::mysql::{
    BinlogError, BinlogFileName, BinlogPos, ChecksumAlg, EventData, EventDecoder, EventHeader,
    EventType, Gtid, TransactionTracker, TrxGtid, TrxOutcome,
};

/// One event: header, body and (with `crc`) its CRC32.
fn event(t: EventType, timestamp: u32, log_pos: u32, flags: u16, body: &[u8], crc: bool) -> Bytes {
    let size = 19 + body.len() + if crc { 4 } else { 0 };
    let header = EventHeader {
        timestamp,
        event_type: t,
        server_id: 1,
        event_size: size as u32,
        log_pos,
        flags,
    };
    let mut out = BytesMut::new();
    header.encode(&mut out);
    out.extend_from_slice(body);
    if crc {
        let c = crc32(&out);
        out.extend_from_slice(&c.to_le_bytes());
    }
    out.freeze()
}

/// A FORMAT_DESCRIPTION body of a checksum-aware server, with CRC32.
fn fde_body(version: &str, created: u32) -> Vec<u8> {
    let mut b = 4u16.to_le_bytes().to_vec();
    let mut v = version.as_bytes().to_vec();
    v.resize(50, 0);
    b.extend_from_slice(&v);
    b.extend_from_slice(&created.to_le_bytes());
    b.push(19);
    // Post-header lengths of 42 types; QUERY's is 13, ROTATE's 8.
    let mut lens = vec![0u8; 42];
    lens[1] = 13;
    lens[3] = 8;
    b.extend_from_slice(&lens);
    b.push(1); // CRC32
    b
}

fn query_body(text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&7u32.to_le_bytes()); // thread id
    b.extend_from_slice(&0u32.to_le_bytes()); // exec time
    b.push(2); // db length
    b.extend_from_slice(&0u16.to_le_bytes()); // error code
    b.extend_from_slice(&0u16.to_le_bytes()); // status vars length
    b.extend_from_slice(b"db\0");
    b.extend_from_slice(text.as_bytes());
    b
}

fn mariadb_gtid_body(seq: u64, domain: u32, flags: u8) -> Vec<u8> {
    let mut b = seq.to_le_bytes().to_vec();
    b.extend_from_slice(&domain.to_le_bytes());
    b.push(flags);
    b.extend_from_slice(&[0; 6]);
    b
}

#[test]
fn transaction_payload_built_by_hand() {
    // MySQL 8: GTID with immediate_commit_timestamp and an original one (top bit set),
    // then the compressed transaction.
    let uuid = [0x11u8; 16];
    let mut gtid = vec![0u8]; // flags
    gtid.extend_from_slice(&uuid);
    gtid.extend_from_slice(&42u64.to_le_bytes());
    gtid.push(2); // LOGICAL_TIMESTAMP_TYPECODE
    gtid.extend_from_slice(&5u64.to_le_bytes());
    gtid.extend_from_slice(&6u64.to_le_bytes());
    let immediate: u64 = 1_700_000_000_123_456;
    let original: u64 = 1_699_999_999_000_001;
    gtid.extend_from_slice(&(immediate | 1 << 55).to_le_bytes()[..7]);
    gtid.extend_from_slice(&original.to_le_bytes()[..7]);
    gtid.push(250); // transaction_length, one byte
    gtid.extend_from_slice(&(80040u32 | 1 << 31).to_le_bytes());
    gtid.extend_from_slice(&80036u32.to_le_bytes());

    let payload = [0x28u8, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4, 5];
    let mut tp = Vec::new();
    // compression type ZSTD, uncompressed size 300 (0xfc 2-byte lenenc), payload size.
    tp.extend_from_slice(&[2, 1, 0]);
    tp.extend_from_slice(&[3, 3, 0xfc, 0x2c, 0x01]);
    tp.extend_from_slice(&[1, 1, payload.len() as u8]);
    tp.push(0); // end mark
    tp.extend_from_slice(&payload);

    let mut dec = EventDecoder::new();
    let f = dec
        .decode(
            event(
                EventType::FORMAT_DESCRIPTION,
                1,
                126,
                0,
                &fde_body("8.0.40", 1),
                true,
            ),
            4,
        )
        .unwrap();
    let g = dec
        .decode(event(EventType::GTID, 2, 400, 0, &gtid, true), 126)
        .unwrap();
    let p = dec
        .decode(
            event(EventType::TRANSACTION_PAYLOAD, 3, 600, 0, &tp, true),
            400,
        )
        .unwrap();
    match g.data() {
        EventData::MysqlGtid(g) => {
            assert_eq!(g.gtid.as_ref().unwrap().gno(), 42);
            assert_eq!(g.immediate_commit_timestamp, Some(immediate));
            assert_eq!(g.original_commit_timestamp, Some(original));
            assert_eq!(g.transaction_length, Some(250));
            assert_eq!(g.immediate_server_version, Some(80040));
            assert_eq!(g.original_server_version, Some(80036));
            assert_eq!(g.logical_clock.unwrap().sequence_number, 6);
        }
        other => panic!("{other:?}"),
    }
    match p.data() {
        EventData::TransactionPayload(tp) => {
            assert_eq!(tp.compression, PayloadCompression::Zstd);
            assert_eq!(tp.uncompressed_size, Some(300));
            assert_eq!(tp.payload_size, 9);
            assert_eq!(&tp.payload[..], &payload);
        }
        other => panic!("{other:?}"),
    }
    // The payload holds the whole transaction: its commit time is the GTID's.
    let file = BinlogFileName::new("binlog.000007").unwrap();
    let mut tracker = TransactionTracker::new();
    assert_eq!(tracker.push(&f, &BinlogPos::new(file.clone(), 126)), None);
    assert_eq!(tracker.push(&g, &BinlogPos::new(file.clone(), 400)), None);
    let t = tracker.push(&p, &BinlogPos::new(file, 600)).unwrap();
    assert_eq!(t.commit_time.as_microsecond(), immediate as i64);
    assert_eq!(t.end.to_string(), "binlog.000007:600");
    assert!(matches!(t.gtid, TrxGtid::Mysql(ref g) if g.gno() == 42));

    // A payload size that disagrees with the bytes, and a missing end mark.
    let mut bad = tp.clone();
    bad[8] = 10;
    let err = dec
        .decode(
            event(EventType::TRANSACTION_PAYLOAD, 3, 600, 0, &bad, true),
            400,
        )
        .unwrap_err();
    assert!(
        matches!(err, BinlogError::Malformed { offset: 400, .. }),
        "{err}"
    );
    let err = dec
        .decode(
            event(EventType::TRANSACTION_PAYLOAD, 3, 600, 0, &tp[..8], true),
            400,
        )
        .unwrap_err();
    assert!(err.to_string().contains("offset 400"), "{err}");
}

#[test]
fn a_resumed_mariadb_dump_stream() {
    // What a server sends when a replica resumes at binlog.000002:1242: a fake
    // ROTATE (artificial, log_pos 0, checksummed before any FORMAT_DESCRIPTION),
    // the file's FORMAT_DESCRIPTION re-sent with log_pos and create time 0, then
    // events, with a heartbeat in between.
    let mut rotate = 1242u64.to_le_bytes().to_vec();
    rotate.extend_from_slice(b"binlog.000002");
    let stream = [
        event(
            EventType::ROTATE,
            0,
            0,
            LOG_EVENT_ARTIFICIAL_F,
            &rotate,
            true,
        ),
        event(
            EventType::FORMAT_DESCRIPTION,
            5,
            0,
            0,
            &fde_body("10.11.19-MariaDB-log", 0),
            true,
        ),
        event(
            EventType::MARIADB_GTID,
            10,
            1284,
            0,
            &mariadb_gtid_body(4, 0, 0x29),
            true,
        ),
        event(
            EventType::QUERY,
            10,
            1400,
            0,
            &query_body("CREATE TABLE t (a INT)"),
            true,
        ),
        event(EventType::HEARTBEAT, 0, 1400, 0, b"binlog.000002", true),
        event(
            EventType::MARIADB_GTID,
            11,
            1442,
            0,
            &mariadb_gtid_body(5, 0, 0x0c),
            true,
        ),
        event(EventType::QUERY, 11, 1500, 0, &query_body("ROLLBACK"), true),
        event(
            EventType::MARIADB_GTID,
            12,
            1542,
            0,
            &mariadb_gtid_body(6, 0, 0x0c),
            true,
        ),
        event(EventType::XID, 13, 1573, 0, &9u64.to_le_bytes(), true),
    ];
    let mut dec = EventDecoder::new();
    let events: Vec<_> = stream
        .iter()
        .map(|raw| {
            let h = EventHeader::parse(raw).unwrap();
            let offset = u64::from(h.log_pos).saturating_sub(u64::from(h.event_size));
            dec.decode(raw.clone(), offset).unwrap()
        })
        .collect();
    match events[0].data() {
        EventData::Rotate(r) => {
            assert_eq!(r.position, 1242);
            // Without the CRC probe the name would end in 4 binary bytes.
            assert_eq!(r.next_file, "binlog.000002");
        }
        other => panic!("{other:?}"),
    }
    let stream_only: Vec<bool> = events.iter().map(|e| e.is_stream_only()).collect();
    assert_eq!(
        stream_only,
        [true, true, false, false, true, false, false, false, false]
    );
    assert_eq!(dec.format().unwrap().checksum, Some(ChecksumAlg::Crc32));

    let file = BinlogFileName::new("binlog.000002").unwrap();
    let mut tracker = TransactionTracker::new();
    let done: Vec<_> = events
        .iter()
        .filter_map(|e| {
            tracker.push(
                e,
                &BinlogPos::new(file.clone(), u64::from(e.header().log_pos)),
            )
        })
        .collect();
    // The DDL (standalone) and the XID-ended group; the rolled-back one is dropped.
    assert_eq!(done.len(), 2);
    assert_eq!(done[0].gtid, TrxGtid::MariaDb(Gtid::new(0, 1, 4)));
    assert_eq!(done[0].end.offset(), 1400);
    assert_eq!(done[0].commit_time.as_second(), 10);
    assert_eq!(done[1].gtid, TrxGtid::MariaDb(Gtid::new(0, 1, 6)));
    assert_eq!(done[1].commit_time.as_second(), 13);
    assert!(!tracker.in_transaction());

    // A CRC that does not match is caught at the offset given.
    let mut bad = stream[3].to_vec();
    bad[25] ^= 0x40;
    let err = dec.decode(Bytes::from(bad), 1284).unwrap_err();
    assert!(
        matches!(err, BinlogError::Checksum { offset: 1284, .. }),
        "{err}"
    );
}

#[test]
fn xa_and_statement_groups() {
    use logship_protocol::mysql::event::mariadb_gtid_flags::*;
    let mut dec = EventDecoder::with_checksum(ChecksumAlg::Off);
    let mut xa_gtid = mariadb_gtid_body(8, 0, FL_PREPARED_XA | FL_TRANSACTIONAL);
    xa_gtid.truncate(13);
    xa_gtid.extend_from_slice(&1u32.to_le_bytes()); // formatID
    xa_gtid.extend_from_slice(&[3, 0]); // gtrid 3, bqual 0
    xa_gtid.extend_from_slice(b"xa1");
    let mut prepare = vec![0u8];
    prepare.extend_from_slice(&1u32.to_le_bytes());
    prepare.extend_from_slice(&3u32.to_le_bytes());
    prepare.extend_from_slice(&0u32.to_le_bytes());
    prepare.extend_from_slice(b"xa1");
    let mut commit_gtid = mariadb_gtid_body(9, 0, FL_STANDALONE | FL_COMPLETED_XA);
    commit_gtid.truncate(13);
    commit_gtid.extend_from_slice(&1u32.to_le_bytes());
    commit_gtid.extend_from_slice(&[3, 0]);
    commit_gtid.extend_from_slice(b"xa1");
    let stream = [
        event(EventType::MARIADB_GTID, 1, 100, 0, &xa_gtid, false),
        event(
            EventType::QUERY,
            1,
            200,
            0,
            &query_body("XA START X'786131',X'',1"),
            false,
        ),
        event(
            EventType::QUERY,
            1,
            300,
            0,
            &query_body("XA END X'786131',X'',1"),
            false,
        ),
        event(EventType::XA_PREPARE, 2, 400, 0, &prepare, false),
        event(EventType::MARIADB_GTID, 3, 500, 0, &commit_gtid, false),
        event(
            EventType::QUERY,
            3,
            600,
            0,
            &query_body("XA COMMIT X'786131',X'',1"),
            false,
        ),
        // Without GTIDs: BEGIN ... SAVEPOINT ... ROLLBACK TO ... COMMIT, and a lone statement.
        event(EventType::QUERY, 4, 700, 0, &query_body("BEGIN"), false),
        event(
            EventType::QUERY,
            4,
            800,
            0,
            &query_body("SAVEPOINT s"),
            false,
        ),
        event(
            EventType::QUERY,
            4,
            900,
            0,
            &query_body("ROLLBACK TO s"),
            false,
        ),
        event(EventType::QUERY, 5, 1000, 0, &query_body("COMMIT"), false),
        event(
            EventType::QUERY,
            6,
            1100,
            0,
            &query_body("DROP TABLE t"),
            false,
        ),
    ];
    let file = BinlogFileName::new("binlog.000001").unwrap();
    let mut tracker = TransactionTracker::new();
    let mut done = Vec::new();
    for (i, raw) in stream.iter().enumerate() {
        let e = dec.decode(raw.clone(), i as u64 * 100).unwrap();
        if let EventData::MariadbGtid(g) = e.data() {
            assert_eq!(&g.xid.as_ref().unwrap().gtrid[..], b"xa1");
        }
        if let Some(t) = tracker.push(
            &e,
            &BinlogPos::new(file.clone(), u64::from(e.header().log_pos)),
        ) {
            done.push((t.gtid, t.end.offset(), t.outcome, t.commit_time.as_second()));
        }
    }
    assert_eq!(
        done,
        [
            (
                TrxGtid::MariaDb(Gtid::new(0, 1, 8)),
                400,
                TrxOutcome::XaPrepare,
                2
            ),
            (
                TrxGtid::MariaDb(Gtid::new(0, 1, 9)),
                600,
                TrxOutcome::XaCommit,
                3
            ),
            (TrxGtid::None, 1000, TrxOutcome::Commit, 5),
            (TrxGtid::None, 1100, TrxOutcome::Commit, 6),
        ]
    );
}

#[test]
fn truncated_bodies_are_errors_with_the_offset() {
    // Every prefix of each typed body: an error or a decode, never a panic, and an
    // error always names the offset given.
    let bodies: [(EventType, Vec<u8>); 4] = [
        (EventType::QUERY, query_body("BEGIN")),
        (EventType::MARIADB_GTID, {
            let mut b = mariadb_gtid_body(1, 0, 2); // FL_GROUP_COMMIT_ID
            b.extend_from_slice(&[0; 2]);
            b
        }),
        (EventType::GTID_LIST, {
            let mut b = 2u32.to_le_bytes().to_vec();
            b.extend_from_slice(&[0; 32]);
            b
        }),
        (EventType::ROTATE, {
            let mut b = 4u64.to_le_bytes().to_vec();
            b.extend_from_slice(b"binlog.000009");
            b
        }),
    ];
    for (t, body) in bodies {
        let mut dec = EventDecoder::with_checksum(ChecksumAlg::Crc32);
        dec.decode(event(t, 0, 0, 0, &body, true), 77).unwrap();
        for n in 0..body.len() {
            if let Err(err) = dec.decode(event(t, 0, 0, 0, &body[..n], true), 77) {
                assert_eq!(err.offset(), 77, "{t} {n}: {err}");
            }
        }
    }
}
