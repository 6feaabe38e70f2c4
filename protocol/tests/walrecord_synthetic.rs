//! The WAL record reader on WAL laid out by hand the way PostgreSQL 15 lays it
//! out, for the shapes a live server writes rarely or never on purpose:
//! overwritten continuations, headers split at exact offsets, block
//! references of every kind, and each kind of corruption.

// Helpers are test code too: a panic there is a failed assertion.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use logship_protocol::pg::walrecord::{WalDecodeError, WalRecord};
use logship_protocol::pg::{Lsn, WalSegSize};
use proptest::prelude::*;

mod support;

const PAGE: u64 = 8192;
const SEG: u64 = 1 << 20;
const SYSID: u64 = 7_300_000_000_000_000_001;
const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
const XLP_FIRST_IS_OVERWRITE_CONTRECORD: u16 = 0x0008;
const RM_HEAP_ID: u8 = 10;

fn seg() -> WalSegSize {
    WalSegSize::new(SEG).unwrap()
}

fn read(
    start: u64,
    bytes: &[u8],
    chunks: &[usize],
) -> (
    Vec<WalRecord>,
    Result<(), WalDecodeError>,
    logship_protocol::pg::walrecord::WalRecordReader,
) {
    support::read(start, seg(), bytes, chunks)
}

/// A record as written: where it starts and where the next one may.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Written {
    lsn: u64,
    end: u64,
}

/// WAL bytes laid out as PostgreSQL 15 writes them, starting at a page.
struct Wal {
    start: u64,
    bytes: Vec<u8>,
    /// The `xl_prev` the next record gets.
    prev: u64,
    sysid: u64,
}

impl Wal {
    fn at(start: u64) -> Wal {
        Wal {
            start,
            bytes: Vec::new(),
            prev: start - 0x100,
            sysid: SYSID,
        }
    }

    fn pos(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    fn page_header(&mut self, info: u16, rem_len: u32) {
        let page = self.pos();
        assert_eq!(page % PAGE, 0);
        let long = page.is_multiple_of(SEG);
        self.bytes.extend(0xD110u16.to_le_bytes());
        self.bytes
            .extend((info | if long { 0x0002 } else { 0 }).to_le_bytes());
        self.bytes.extend(1u32.to_le_bytes());
        self.bytes.extend(page.to_le_bytes());
        self.bytes.extend(rem_len.to_le_bytes());
        self.bytes.extend([0; 4]);
        if long {
            self.bytes.extend(self.sysid.to_le_bytes());
            self.bytes.extend((SEG as u32).to_le_bytes());
            self.bytes.extend((PAGE as u32).to_le_bytes());
        }
    }

    /// Pads to the next MAXALIGNed position, and past the page header if that is a page start.
    fn align(&mut self) {
        while !self.pos().is_multiple_of(8) {
            self.bytes.push(0);
        }
        if self.pos().is_multiple_of(PAGE) {
            self.page_header(0, 0);
        }
    }

    /// Writes record bytes from here on, with continuation page headers.
    fn put(&mut self, mut rest: &[u8]) {
        while !rest.is_empty() {
            if self.pos().is_multiple_of(PAGE) {
                self.page_header(XLP_FIRST_IS_CONTRECORD, rest.len() as u32);
            }
            let n = ((PAGE - self.pos() % PAGE) as usize).min(rest.len());
            self.bytes.extend(&rest[..n]);
            rest = &rest[n..];
        }
    }

    fn record(&mut self, rmid: u8, info: u8, xid: u32, body: &[u8]) -> Written {
        self.align();
        let lsn = self.pos();
        let record = encode_record(rmid, info, xid, self.prev, body);
        self.put(&record);
        self.prev = lsn;
        Written {
            lsn,
            end: self.pos().next_multiple_of(8),
        }
    }

    /// A record that ends exactly at `target`, on the current page.
    fn fill_to(&mut self, target: u64) -> Written {
        self.align();
        let total = (target - self.pos()) as usize;
        let main = if total - 26 <= 255 {
            total - 26
        } else {
            total - 29
        };
        let written = self.record(RM_HEAP_ID, 0, 700, &main_only(&vec![7; main]));
        assert_eq!(self.pos(), target);
        written
    }
}

/// An `XLogRecord` header with its CRC, then `body`.
fn encode_record(rmid: u8, info: u8, xid: u32, prev: u64, body: &[u8]) -> Vec<u8> {
    let mut record = Vec::new();
    record.extend((24 + body.len() as u32).to_le_bytes());
    record.extend(xid.to_le_bytes());
    record.extend(prev.to_le_bytes());
    record.extend([info, rmid, 0, 0]);
    let crc = crc32c::crc32c_append(crc32c::crc32c(body), &record);
    record.extend(crc.to_le_bytes());
    record.extend(body);
    record
}

/// A record body with main data and no block references.
fn main_only(main: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    match main.len() {
        0 => {}
        len @ 1..=255 => body.extend([255, len as u8]),
        len => {
            body.push(254);
            body.extend((len as u32).to_le_bytes());
        }
    }
    body.extend(main);
    body
}

fn lsns(records: &[WalRecord]) -> Vec<Written> {
    records
        .iter()
        .map(|r| Written {
            lsn: r.lsn.as_u64(),
            end: r.end_lsn.as_u64(),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn records_of_any_size_come_back_in_any_chunking(
        mains in prop::collection::vec((0usize..12_000, any::<u32>()), 1..30),
        chunks in prop::collection::vec(1usize..10_000, 1..10),
    ) {
        // Five pages before a segment end, so that most runs cross it.
        let start = 2 * SEG - 5 * PAGE;
        let mut wal = Wal::at(start);
        let mut expected = Vec::new();
        for (i, (len, xid)) in mains.iter().enumerate() {
            let main: Vec<u8> = (0..*len).map(|b| (b + i) as u8).collect();
            let written = wal.record(RM_HEAP_ID, 0x10, *xid, &main_only(&main));
            expected.push((written, *xid, main));
        }
        let (records, result, reader) = read(start, &wal.bytes, &chunks);
        prop_assert_eq!(result, Ok(()));
        prop_assert_eq!(reader.end_of_wal(), None);
        let got: Vec<_> = records
            .iter()
            .map(|r| (Written { lsn: r.lsn.as_u64(), end: r.end_lsn.as_u64() }, r.xid, r.main_data().to_vec()))
            .collect();
        prop_assert_eq!(got, expected);
        prop_assert!(records.iter().all(|r| r.rmid == RM_HEAP_ID && r.info == 0x10));
    }
}

#[test]
fn headers_split_across_pages_and_records_ending_at_a_page_end() {
    let start = SEG;
    let mut wal = Wal::at(start);
    let mut expected = vec![wal.fill_to(start + PAGE - 8)];
    // 8 bytes of this header on one page, 16 on the next.
    expected.push(wal.record(RM_HEAP_ID, 0, 701, &main_only(&[1; 40])));
    expected.push(wal.fill_to(start + 2 * PAGE - 16));
    expected.push(wal.record(RM_HEAP_ID, 0, 702, &main_only(&[2; 40])));
    // Exactly the header fits; the body starts on the next page.
    expected.push(wal.fill_to(start + 3 * PAGE - 24));
    expected.push(wal.record(RM_HEAP_ID, 0, 703, &main_only(&[3; 40])));
    // A record that ends exactly at a page end: the next page does not continue it.
    expected.push(wal.fill_to(start + 4 * PAGE));
    expected.push(wal.record(RM_HEAP_ID, 0, 704, &main_only(&[4; 40])));
    // A record of 24 bytes: a header and nothing else.
    expected.push(wal.record(RM_HEAP_ID, 0, 705, &[]));

    for chunks in [vec![1 << 20], vec![1], vec![7, 13, 8192]] {
        let (records, result, _) = read(start, &wal.bytes, &chunks);
        result.unwrap();
        assert_eq!(lsns(&records), expected);
    }
    let (records, _, _) = read(start, &wal.bytes, &[1 << 20]);
    assert_eq!(records[1].lsn.as_u64() % PAGE, PAGE - 8);
    assert_eq!(records[3].lsn.as_u64() % PAGE, PAGE - 16);
    assert_eq!(records[5].lsn.as_u64() % PAGE, PAGE - 24);
    assert_eq!(records[7].lsn.as_u64(), start + 4 * PAGE + 24);
    assert_eq!(records[5].main_data(), &[3; 40]);
    assert!(records[8].main_data().is_empty());
}

#[test]
fn overwritten_continuation_drops_the_cut_record() {
    let start = SEG;
    let mut wal = Wal::at(start);
    let before = wal.record(RM_HEAP_ID, 0, 701, &main_only(&[1; 100]));
    // A 9000-byte record whose end was lost in a crash: only its first page
    // made it, and the server wrote on at the next page.
    wal.align();
    let cut = encode_record(RM_HEAP_ID, 0, 702, before.lsn, &main_only(&[2; 9000]));
    let on_first_page = (PAGE - wal.pos() % PAGE) as usize;
    wal.bytes.extend(&cut[..on_first_page]);
    wal.page_header(XLP_FIRST_IS_OVERWRITE_CONTRECORD, 0);
    // XLOG_OVERWRITE_CONTRECORD, linked to the last complete record.
    let overwrite = wal.record(0, 0xD0, 0, &main_only(&[0; 16]));
    let after = wal.record(RM_HEAP_ID, 0, 703, &main_only(&[3; 10]));

    let (records, result, _) = read(start, &wal.bytes, &[1000]);
    result.unwrap();
    assert_eq!(lsns(&records), vec![before, overwrite, after]);
    assert_eq!(overwrite.lsn, start + PAGE + 24);
}

#[test]
fn switch_skips_the_rest_of_the_segment() {
    // Start two pages before the segment end: a reader may start at any page.
    let start = 2 * SEG - 2 * PAGE;
    let mut wal = Wal::at(start);
    let first = wal.record(RM_HEAP_ID, 0, 701, &main_only(&[1; 100]));
    let switch = wal.record(0, 0x40, 0, &[]);
    // Whatever fills the rest of the segment is never looked at.
    wal.bytes.resize((2 * SEG - start) as usize, 0xFF);
    let next = wal.record(RM_HEAP_ID, 0, 702, &main_only(&[2; 10]));

    let (records, result, _) = read(start, &wal.bytes, &[3000]);
    result.unwrap();
    assert_eq!(
        lsns(&records),
        vec![
            first,
            Written {
                lsn: switch.lsn,
                end: 2 * SEG
            },
            next
        ]
    );
    assert_eq!(next.lsn, 2 * SEG + 40);
}

#[test]
fn zero_length_is_the_end_and_later_bytes_are_ignored() {
    let start = SEG;
    let mut wal = Wal::at(start);
    let only = wal.record(RM_HEAP_ID, 0, 701, &main_only(&[1; 100]));
    wal.bytes.extend([0; 64]);
    let (records, result, mut reader) = read(start, &wal.bytes, &[1 << 20]);
    result.unwrap();
    assert_eq!(lsns(&records), vec![only]);
    assert_eq!(reader.end_of_wal(), Some(Lsn::new(only.end)));
    // Even a valid record after the end is not read.
    reader.feed(&encode_record(RM_HEAP_ID, 0, 702, only.lsn, &[]));
    assert_eq!(reader.next_record(), Ok(None));
}

#[test]
fn continuation_where_none_is_due_is_an_error() {
    let start = SEG;
    let mut wal = Wal::at(start);
    wal.fill_to(start + PAGE);
    wal.page_header(XLP_FIRST_IS_CONTRECORD, 16);
    wal.record(RM_HEAP_ID, 0, 702, &main_only(&[2; 10]));
    let (records, result, _) = read(start, &wal.bytes, &[1 << 20]);
    assert_eq!(records.len(), 1);
    assert_eq!(
        result,
        Err(WalDecodeError::UnexpectedContinuation {
            page: Lsn::new(start + PAGE)
        })
    );
}

#[test]
fn continuation_flag_missing_is_an_error() {
    let start = SEG;
    let mut wal = Wal::at(start);
    wal.record(RM_HEAP_ID, 0, 701, &main_only(&[1; 9000]));
    let flags = (PAGE + 2) as usize;
    wal.bytes[flags] &= !(XLP_FIRST_IS_CONTRECORD as u8);
    let (_, result, _) = read(start, &wal.bytes, &[1 << 20]);
    let err = result.unwrap_err();
    assert_eq!(
        err,
        WalDecodeError::MissingContinuation {
            page: Lsn::new(start + PAGE)
        }
    );
    assert_eq!(
        err.to_string(),
        "WAL page at 0/102000 should continue the record before it but has no \
         XLP_FIRST_IS_CONTRECORD flag: the segment is corrupt"
    );
}

#[test]
fn prev_link_must_name_the_record_before() {
    let start = SEG;
    let mut wal = Wal::at(start);
    wal.record(RM_HEAP_ID, 0, 701, &main_only(&[1; 10]));
    wal.prev = 0x1234;
    let bad = wal.record(RM_HEAP_ID, 0, 702, &main_only(&[2; 10]));
    let (records, result, _) = read(start, &wal.bytes, &[1 << 20]);
    assert_eq!(records.len(), 1);
    assert_eq!(
        result,
        Err(WalDecodeError::BadPrevLink {
            lsn: Lsn::new(bad.lsn),
            prev: Lsn::new(0x1234)
        })
    );

    // With nothing read before, it must at least point backwards.
    let mut wal = Wal::at(start);
    wal.prev = start + PAGE;
    wal.record(RM_HEAP_ID, 0, 701, &main_only(&[1; 10]));
    let (_, result, _) = read(start, &wal.bytes, &[1 << 20]);
    assert!(
        matches!(result, Err(WalDecodeError::BadPrevLink { .. })),
        "{result:?}"
    );
}

#[test]
fn segments_of_another_system_are_refused() {
    let start = SEG;
    let mut wal = Wal::at(start);
    let switch = wal.record(0, 0x40, 0, &[]);
    wal.bytes.resize(SEG as usize, 0);
    wal.sysid = SYSID + 1;
    wal.record(RM_HEAP_ID, 0, 701, &[]);
    let (records, result, _) = read(start, &wal.bytes, &[1 << 20]);
    assert_eq!(
        lsns(&records),
        vec![Written {
            lsn: switch.lsn,
            end: 2 * SEG
        }]
    );
    assert_eq!(
        result,
        Err(WalDecodeError::SystemIdMismatch {
            page: Lsn::new(2 * SEG),
            found: SYSID + 1,
            expected: SYSID
        })
    );
}

#[test]
fn bad_record_header_fields_are_errors() {
    let start = SEG;
    let mut wal = Wal::at(start);
    let bad = wal.record(50, 0, 701, &[]);
    let (_, result, _) = read(start, &wal.bytes, &[1 << 20]);
    assert_eq!(
        result,
        Err(WalDecodeError::UnknownResourceManager {
            lsn: Lsn::new(bad.lsn),
            rmid: 50
        })
    );

    // Custom resource managers (128 and up) are valid.
    let mut wal = Wal::at(start);
    wal.record(128, 0, 701, &[]);
    let (records, result, _) = read(start, &wal.bytes, &[1 << 20]);
    result.unwrap();
    assert_eq!(records[0].rmid, 128);

    let mut wal = Wal::at(start);
    wal.align();
    wal.bytes.extend(10u32.to_le_bytes());
    let (_, result, _) = read(start, &wal.bytes, &[1 << 20]);
    assert_eq!(
        result,
        Err(WalDecodeError::BadRecordLength {
            lsn: Lsn::new(start + 40),
            len: 10
        })
    );
}

#[test]
fn start_inside_a_page_is_an_error() {
    let (records, result, mut reader) = read(SEG + 40, &[0; 100], &[100]);
    assert!(records.is_empty());
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot start reading WAL at 0/100028: the start must be the beginning of an 8 KiB page"
    );
    assert_eq!(reader.next_record(), Err(err));
}

/// `XLogRecordBlockHeader` and what follows it.
fn block(id: u8, fork_flags: u8, data_len: u16) -> Vec<u8> {
    let mut header = vec![id, fork_flags];
    header.extend(data_len.to_le_bytes());
    header
}

const HAS_IMAGE: u8 = 0x10;
const HAS_DATA: u8 = 0x20;
const SAME_REL: u8 = 0x80;
const REL: [u8; 12] = [1; 12];
const BLOCK_NO: [u8; 4] = [2; 4];

#[test]
fn main_data_is_found_after_every_kind_of_block_header() {
    let main: Vec<u8> = (0..300).map(|b| b as u8).collect();
    let mut body = Vec::new();
    // Block 0: an uncompressed image and data, with its relation.
    body.extend(block(0, HAS_IMAGE | HAS_DATA, 10));
    body.extend(100u16.to_le_bytes()); // bimg_len
    body.extend(0u16.to_le_bytes()); // hole_offset
    body.push(0x02); // BKPIMAGE_APPLY
    body.extend(REL);
    body.extend(BLOCK_NO);
    // Block 1: data only, same relation.
    body.extend(block(1, HAS_DATA | SAME_REL, 5));
    body.extend(BLOCK_NO);
    // Block 5: a compressed image with a hole, which adds hole_length.
    body.extend(block(5, HAS_IMAGE | SAME_REL, 0));
    body.extend(50u16.to_le_bytes());
    body.extend(100u16.to_le_bytes());
    body.push(0x01 | 0x08); // BKPIMAGE_HAS_HOLE | BKPIMAGE_COMPRESS_LZ4
    body.extend(200u16.to_le_bytes());
    body.extend(BLOCK_NO);
    // XLR_BLOCK_ID_ORIGIN, XLR_BLOCK_ID_TOPLEVEL_XID, XLR_BLOCK_ID_DATA_LONG.
    body.push(253);
    body.extend(7u16.to_le_bytes());
    body.push(252);
    body.extend(700u32.to_le_bytes());
    body.push(254);
    body.extend(300u32.to_le_bytes());
    // The payloads, in block order, then the main data.
    body.extend([0xAA; 100 + 10]);
    body.extend([0xBB; 5]);
    body.extend([0xCC; 50]);
    body.extend(&main);

    let start = SEG;
    let mut wal = Wal::at(start);
    wal.record(RM_HEAP_ID, 0, 701, &body);
    // Blocks and no main data.
    let mut no_main = block(0, HAS_DATA, 3);
    no_main.extend(REL);
    no_main.extend(BLOCK_NO);
    no_main.extend([0xDD; 3]);
    wal.record(RM_HEAP_ID, 0, 701, &no_main);

    let (records, result, _) = read(start, &wal.bytes, &[1 << 20]);
    result.unwrap();
    assert_eq!(records[0].main_data(), main.as_slice());
    assert!(records[1].main_data().is_empty());
}

#[test]
fn inconsistent_block_headers_are_errors_naming_the_record() {
    let with_rel = |mut header: Vec<u8>| {
        header.extend(REL);
        header.extend(BLOCK_NO);
        header
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("out-of-order block id 0", {
            let mut body = with_rel(block(1, HAS_DATA, 1));
            body.extend(with_rel(block(0, HAS_DATA, 1)));
            body.extend([0; 2]);
            body
        }),
        ("previous block's relation", {
            let mut body = block(0, HAS_DATA | SAME_REL, 1);
            body.extend(BLOCK_NO);
            body.push(0);
            body
        }),
        (
            "block 0 has 0 bytes of data",
            with_rel(block(0, HAS_DATA, 0)),
        ),
        ("block 0 has 4 bytes of data", {
            let mut body = with_rel(block(0, 0, 4));
            body.extend([0; 4]);
            body
        }),
        ("invalid block id 100", vec![100, 0, 0, 0]),
        ("announce 10 bytes of data, but 9 follow", {
            let mut body = main_only(&[0; 10]);
            body.pop();
            body
        }),
        ("run past the record's end", vec![254, 1, 0]),
    ];
    for (expected, body) in cases {
        let start = SEG;
        let mut wal = Wal::at(start);
        let bad = wal.record(RM_HEAP_ID, 0, 701, &body);
        let (_, result, _) = read(start, &wal.bytes, &[1 << 20]);
        let err = result.unwrap_err();
        assert!(
            matches!(&err, WalDecodeError::BadBlockHeaders { lsn, .. } if lsn.as_u64() == bad.lsn),
            "{expected}: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(expected) && text.contains("0/100028"),
            "{text}"
        );
    }
}
