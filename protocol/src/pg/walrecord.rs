//! WAL records from a stream of PostgreSQL 15 WAL bytes: the sans-IO twin of
//! PostgreSQL's `xlogreader.c`.
//!
//! [`WalRecordReader`] takes contiguous WAL bytes, a segment at a time or in
//! any smaller pieces, and hands back whole records. What it checks and decodes:
//!
//! - every 8 KiB page header (`XLogPageHeaderData`, and `XLogLongPageHeaderData`
//!   at segment starts): `xlp_magic`, the flags, `xlp_pageaddr`, and in long
//!   headers the segment size, page size and system identifier;
//! - records that span pages and segments, reassembled while checking
//!   `XLP_FIRST_IS_CONTRECORD` and `xlp_rem_len` on each page. The tail of a
//!   record that began before the start position is skipped. A page flagged
//!   `XLP_FIRST_IS_OVERWRITE_CONTRECORD` drops the record it cut short, as
//!   PostgreSQL does after a crash that lost a record's end;
//! - the record header (`XLogRecord`: length, resource manager, `xl_prev`) and
//!   the CRC-32C over the whole record;
//! - after `XLOG_SWITCH`, the rest of the segment is padding and is skipped;
//! - a zero `xl_tot_len`, or a page whose `xlp_pageaddr` is not its own
//!   position (never written, or left from a recycled segment), is the end of
//!   valid WAL: not an error, and nothing after it is read.
//!
//! Not decoded: of a record's body, only the block headers are walked, enough
//! to find the main data (`DecodeXLogRecord`); block images and block data are
//! skipped without cross-checking them. The timeline in page headers is not
//! checked. WAL is read as little-endian, the byte order of x86-64 and arm64
//! servers.

use std::cmp::min;
use std::mem;
use std::ops::Range;

use bytes::{Buf, BytesMut};

use super::{Lsn, WalSegSize};

/// PostgreSQL's `RM_XLOG_ID`: the resource manager of checkpoints, switches and other WAL bookkeeping.
pub const RM_XLOG_ID: u8 = 0;
/// PostgreSQL's `RM_XACT_ID`: the resource manager of transaction commits and aborts.
pub const RM_XACT_ID: u8 = 1;

/// `XLOG_BLCKSZ`: the WAL page size logship supports (PostgreSQL's default).
const XLOG_BLCKSZ: u64 = 8192;
/// `XLOG_PAGE_MAGIC` of PostgreSQL 15.
const XLOG_PAGE_MAGIC: u16 = 0xD110;
/// `SizeOfXLogShortPHD`.
const SHORT_PAGE_HEADER_LEN: usize = 24;
/// `SizeOfXLogLongPHD`.
const LONG_PAGE_HEADER_LEN: usize = 40;
const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
const XLP_LONG_HEADER: u16 = 0x0002;
const XLP_FIRST_IS_OVERWRITE_CONTRECORD: u16 = 0x0008;
const XLP_ALL_FLAGS: u16 = 0x000F;

/// `SizeOfXLogRecord`.
const RECORD_HEADER_LEN: usize = 24;
/// Offset of `xl_crc` in `XLogRecord`; the CRC covers the header up to here.
const XL_CRC_OFFSET: usize = 20;
/// PostgreSQL refuses to allocate more than `MaxAllocSize` for a record.
const MAX_RECORD_LEN: u32 = 0x3FFF_FFFF;
/// `RM_MAX_BUILTIN_ID` of PostgreSQL 15 (`RM_LOGICALMSG_ID`).
const RM_MAX_BUILTIN_ID: u8 = 21;
/// `RM_MIN_CUSTOM_ID`: ids from here on belong to extensions.
const RM_MIN_CUSTOM_ID: u8 = 128;
/// `XLR_INFO_MASK`: the low bits of `xl_info` that the record machinery owns.
const XLR_INFO_MASK: u8 = 0x0F;
/// `XLOG_SWITCH`, an `RM_XLOG_ID` opcode.
const XLOG_SWITCH: u8 = 0x40;

const XLR_MAX_BLOCK_ID: u8 = 32;
const XLR_BLOCK_ID_DATA_SHORT: u8 = 255;
const XLR_BLOCK_ID_DATA_LONG: u8 = 254;
const XLR_BLOCK_ID_ORIGIN: u8 = 253;
const XLR_BLOCK_ID_TOPLEVEL_XID: u8 = 252;
const BKPBLOCK_HAS_IMAGE: u8 = 0x10;
const BKPBLOCK_HAS_DATA: u8 = 0x20;
const BKPBLOCK_SAME_REL: u8 = 0x80;
const BKPIMAGE_HAS_HOLE: u8 = 0x01;
/// `BKPIMAGE_COMPRESS_PGLZ | BKPIMAGE_COMPRESS_LZ4 | BKPIMAGE_COMPRESS_ZSTD`.
const BKPIMAGE_COMPRESSED: u8 = 0x04 | 0x08 | 0x10;
/// `sizeof(RelFileNode)`.
const REL_FILE_NODE_LEN: usize = 12;

/// One WAL record: its position, header fields and main data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecord {
    /// Where the record starts (PostgreSQL's `ReadRecPtr`).
    pub lsn: Lsn,
    /// Where the next record may start (`EndRecPtr`): the end, MAXALIGNed; the next segment's start after `XLOG_SWITCH`.
    pub end_lsn: Lsn,
    /// `xl_xid`: the transaction that wrote the record, 0 if none.
    pub xid: u32,
    /// `xl_rmid`: the resource manager, such as [`RM_XACT_ID`].
    pub rmid: u8,
    /// `xl_info`: the resource manager's opcode in the high bits, record flags in the low ones.
    pub info: u8,
    main_data: Vec<u8>,
}

impl WalRecord {
    /// The record's main data (`XLogRecGetData`), empty if it has none.
    pub fn main_data(&self) -> &[u8] {
        &self.main_data
    }
}

/// Where a record that follows WAL ending at `end` starts: `end` itself, or past the page
/// header when `end` falls on a page boundary (the long header at a segment's start). This
/// is what `pg_current_wal_insert_lsn()` reports after a record that fills its page.
pub fn next_record_start(end: Lsn, seg: WalSegSize) -> Lsn {
    let raw = end.as_u64();
    let header = if raw.is_multiple_of(seg.bytes()) {
        LONG_PAGE_HEADER_LEN
    } else if raw.is_multiple_of(XLOG_BLCKSZ) {
        SHORT_PAGE_HEADER_LEN
    } else {
        0
    };
    Lsn::new(raw.saturating_add(header as u64))
}

#[cfg(test)]
impl WalRecord {
    /// A record built by hand, for decoders' unit tests.
    pub(crate) fn for_tests(
        lsn: Lsn,
        end_lsn: Lsn,
        xid: u32,
        rmid: u8,
        info: u8,
        main_data: Vec<u8>,
    ) -> WalRecord {
        WalRecord {
            lsn,
            end_lsn,
            xid,
            rmid,
            info,
            main_data,
        }
    }
}

/// WAL that cannot be decoded; each variant carries the position concerned. The texts state
/// the cause only: the caller knows where the WAL came from, and so what would fix it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WalDecodeError {
    /// The reader was asked to start inside a page.
    #[error(
        "cannot start reading WAL at {start}: the start must be the beginning of an 8 KiB page"
    )]
    StartNotPageAligned {
        /// The requested start.
        start: Lsn,
    },
    /// A page's `xlp_magic` is not PostgreSQL 15's.
    #[error(
        "WAL page at {page} has magic {magic:#06X}, not PostgreSQL 15's 0xD110: the segment \
         is not PostgreSQL 15 WAL, or it is corrupt"
    )]
    BadMagic {
        /// The page.
        page: Lsn,
        /// The `xlp_magic` found.
        magic: u16,
    },
    /// A page's `xlp_info` has unknown bits, or lacks the long header at a segment start.
    #[error("WAL page at {page} has invalid flags {info:#06X}: the segment is corrupt")]
    BadPageFlags {
        /// The page.
        page: Lsn,
        /// The `xlp_info` found.
        info: u16,
    },
    /// A long page header names a different segment size than the reader's.
    #[error("WAL segment at {page} has {found}-byte segments, but the reader expects {expected}")]
    SegmentSizeMismatch {
        /// The segment's first page.
        page: Lsn,
        /// `xlp_seg_size`.
        found: u32,
        /// The size the reader was created with.
        expected: u64,
    },
    /// A long page header names a page size other than 8 KiB.
    #[error(
        "WAL segment at {page} has {found}-byte pages: logship reads only the default 8192-byte \
         XLOG_BLCKSZ"
    )]
    PageSizeMismatch {
        /// The segment's first page.
        page: Lsn,
        /// `xlp_xlog_blcksz`.
        found: u32,
    },
    /// A segment comes from a different database system than the earlier ones.
    #[error(
        "WAL segment at {page} belongs to database system {found}, not {expected}: WAL of two \
         servers was mixed"
    )]
    SystemIdMismatch {
        /// The segment's first page.
        page: Lsn,
        /// `xlp_sysid` of this segment.
        found: u64,
        /// `xlp_sysid` of the first segment read.
        expected: u64,
    },
    /// A page that should continue a record does not say so.
    #[error(
        "WAL page at {page} should continue the record before it but has no \
         XLP_FIRST_IS_CONTRECORD flag: the segment is corrupt"
    )]
    MissingContinuation {
        /// The page.
        page: Lsn,
    },
    /// A page continues a record by a different length than the record needs.
    #[error(
        "WAL page at {page} continues the record before it with {found} bytes, but {expected} \
         are missing: the segment is corrupt"
    )]
    ContinuationLength {
        /// The page.
        page: Lsn,
        /// `xlp_rem_len`.
        found: u32,
        /// The bytes the record still lacks.
        expected: u32,
    },
    /// A page continues a record although the previous one ended on the page before.
    #[error(
        "WAL page at {page} continues a record, but the previous record ended before it: \
         the segment is corrupt"
    )]
    UnexpectedContinuation {
        /// The page.
        page: Lsn,
    },
    /// `xl_tot_len` is too small or too large to be a record.
    #[error("WAL record at {lsn} has invalid length {len}: the segment is corrupt")]
    BadRecordLength {
        /// The record.
        lsn: Lsn,
        /// `xl_tot_len`.
        len: u32,
    },
    /// `xl_rmid` is not a PostgreSQL 15 resource manager.
    #[error(
        "WAL record at {lsn} has unknown resource manager id {rmid}: the segment is not \
         PostgreSQL 15 WAL, or it is corrupt"
    )]
    UnknownResourceManager {
        /// The record.
        lsn: Lsn,
        /// `xl_rmid`.
        rmid: u8,
    },
    /// `xl_prev` does not point at the previous record.
    #[error(
        "WAL record at {lsn} has prev-link {prev}, which is not the record before it: the \
         segment is corrupt or from another timeline"
    )]
    BadPrevLink {
        /// The record.
        lsn: Lsn,
        /// `xl_prev`.
        prev: Lsn,
    },
    /// The record's CRC-32C does not match its bytes.
    #[error(
        "WAL record at {lsn} fails its CRC check (stored {stored:08X}, computed {computed:08X}): \
         the segment is corrupt"
    )]
    Crc {
        /// The record.
        lsn: Lsn,
        /// `xl_crc`.
        stored: u32,
        /// The CRC-32C of the bytes read.
        computed: u32,
    },
    /// The block headers do not add up to the record's length.
    #[error("WAL record at {lsn} has invalid block headers ({detail}): the segment is corrupt")]
    BadBlockHeaders {
        /// The record.
        lsn: Lsn,
        /// What does not add up.
        detail: String,
    },
}

/// Reads WAL records out of contiguous WAL bytes, without I/O (PostgreSQL's `XLogReaderState`).
#[derive(Debug)]
pub struct WalRecordReader {
    seg: WalSegSize,
    input: Input,
    state: State,
    /// Start of the last record returned (`DecodeRecPtr`): the next record's `xl_prev`.
    prev: Option<u64>,
    /// `xlp_sysid` of the first long page header; every later one must match.
    sysid: Option<u64>,
    /// Whether no page header has been read yet: only the first page may open
    /// with the tail of a record we never saw the start of.
    first_page: bool,
}

/// The bytes fed but not yet consumed.
#[derive(Debug)]
struct Input {
    /// WAL position of `buf[0]`.
    pos: u64,
    buf: BytesMut,
}

impl Input {
    /// Up to `limit` bytes from the front.
    fn peek(&self, limit: u64) -> &[u8] {
        let n = usize::try_from(limit).map_or(self.buf.len(), |l| min(l, self.buf.len()));
        self.buf.get(..n).unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        let n = min(n, self.buf.len());
        self.buf.advance(n);
        self.pos += n as u64;
    }

    /// Bytes left on the current page.
    fn page_left(&self) -> u64 {
        XLOG_BLCKSZ - self.pos % XLOG_BLCKSZ
    }
}

#[derive(Debug)]
enum State {
    /// The next record starts at the next MAXALIGNed position.
    BetweenRecords,
    /// A record being assembled.
    InRecord(Partial),
    /// The tail of a record that began before the start position, being skipped.
    Continuation { remaining: u32 },
    /// The padding after `XLOG_SWITCH`, skipped up to the next segment.
    SwitchPadding { until: u64 },
    /// Valid WAL ends at `at`; later bytes are dropped.
    End { at: u64 },
    /// Decoding failed; every later call reports the same error.
    Failed(WalDecodeError),
}

#[derive(Debug)]
struct Partial {
    lsn: u64,
    /// `xl_tot_len`.
    total: u32,
    bytes: Vec<u8>,
    /// Whether the header checks have run (once all of the header is here).
    header_checked: bool,
}

impl Partial {
    fn missing(&self) -> u32 {
        self.total
            .saturating_sub(u32::try_from(self.bytes.len()).unwrap_or(u32::MAX))
    }
}

/// What one step of decoding achieved.
enum Step {
    Record(WalRecord),
    Progress,
    NeedMore,
}

impl WalRecordReader {
    /// A reader whose first byte will be `start`, the beginning of a segment or of a page.
    pub fn new(start: Lsn, seg: WalSegSize) -> WalRecordReader {
        let state = if start.as_u64().is_multiple_of(XLOG_BLCKSZ) {
            State::BetweenRecords
        } else {
            State::Failed(WalDecodeError::StartNotPageAligned { start })
        };
        WalRecordReader {
            seg,
            input: Input {
                pos: start.as_u64(),
                buf: BytesMut::new(),
            },
            state,
            prev: None,
            sysid: None,
            first_page: true,
        }
    }

    /// Appends the WAL bytes that follow those fed so far.
    pub fn feed(&mut self, bytes: &[u8]) {
        // Once decoding has stopped, keeping bytes would only grow memory.
        if !matches!(self.state, State::End { .. } | State::Failed(_)) {
            self.input.buf.extend_from_slice(bytes);
        }
    }

    /// The next complete record, or `Ok(None)` when more bytes are needed or valid WAL has ended.
    pub fn next_record(&mut self) -> Result<Option<WalRecord>, WalDecodeError> {
        loop {
            match self.step() {
                Ok(Step::Record(record)) => return Ok(Some(record)),
                Ok(Step::Progress) => {}
                Ok(Step::NeedMore) => return Ok(None),
                Err(err) => {
                    self.state = State::Failed(err.clone());
                    self.input.buf = BytesMut::new();
                    return Err(err);
                }
            }
        }
    }

    /// Where valid WAL ends, once the reader has found its end: the position
    /// where a record was due but none (or an unwritten page) was found.
    pub fn end_of_wal(&self) -> Option<Lsn> {
        match self.state {
            State::End { at } => Some(Lsn::new(at)),
            _ => None,
        }
    }

    fn step(&mut self) -> Result<Step, WalDecodeError> {
        match &mut self.state {
            State::End { .. } => return Ok(Step::NeedMore),
            State::Failed(err) => return Err(err.clone()),
            State::SwitchPadding { until } => {
                let until = *until;
                let n = self.input.peek(until.saturating_sub(self.input.pos)).len();
                self.input.consume(n);
                if self.input.pos < until {
                    return Ok(Step::NeedMore);
                }
                self.state = State::BetweenRecords;
                return Ok(Step::Progress);
            }
            _ => {}
        }
        if self.input.pos.is_multiple_of(XLOG_BLCKSZ) {
            return self.read_page_header();
        }
        match &mut self.state {
            State::BetweenRecords => self.start_record(),
            State::InRecord(partial) => {
                let limit = min(self.input.page_left(), u64::from(partial.missing()));
                let chunk = self.input.peek(limit);
                if chunk.is_empty() {
                    return Ok(Step::NeedMore);
                }
                partial.bytes.extend_from_slice(chunk);
                let n = chunk.len();
                self.input.consume(n);
                if !partial.header_checked && partial.bytes.len() >= RECORD_HEADER_LEN {
                    check_header(&partial.bytes, partial.lsn, self.prev)?;
                    partial.header_checked = true;
                }
                if partial.missing() > 0 {
                    return Ok(Step::Progress);
                }
                match mem::replace(&mut self.state, State::BetweenRecords) {
                    State::InRecord(done) => self.finish_record(done).map(Step::Record),
                    _ => Ok(Step::Progress),
                }
            }
            State::Continuation { remaining } => {
                let limit = min(self.input.page_left(), u64::from(*remaining));
                let n = self.input.peek(limit).len();
                if n == 0 {
                    return Ok(Step::NeedMore);
                }
                self.input.consume(n);
                *remaining = remaining.saturating_sub(u32::try_from(n).unwrap_or(u32::MAX));
                if *remaining == 0 {
                    self.state = State::BetweenRecords;
                }
                Ok(Step::Progress)
            }
            // Handled above.
            State::SwitchPadding { .. } | State::End { .. } | State::Failed(_) => {
                Ok(Step::NeedMore)
            }
        }
    }

    /// Skips the MAXALIGN padding, then reads `xl_tot_len`, the only header
    /// field sure to be on this page (`XLogDecodeNextRecord`).
    fn start_record(&mut self) -> Result<Step, WalDecodeError> {
        let aligned = maxalign(self.input.pos);
        if self.input.pos < aligned {
            let n = self.input.peek(aligned - self.input.pos).len();
            self.input.consume(n);
            return Ok(if self.input.pos < aligned {
                Step::NeedMore
            } else {
                Step::Progress
            });
        }
        let Some(len) = self.input.peek(4).first_chunk::<4>() else {
            return Ok(Step::NeedMore);
        };
        let total = u32::from_le_bytes(*len);
        let lsn = self.input.pos;
        if total == 0 {
            self.state = State::End { at: lsn };
            self.input.buf = BytesMut::new();
            return Ok(Step::NeedMore);
        }
        if !(RECORD_HEADER_LEN as u32..=MAX_RECORD_LEN).contains(&total) {
            return Err(WalDecodeError::BadRecordLength {
                lsn: Lsn::new(lsn),
                len: total,
            });
        }
        self.state = State::InRecord(Partial {
            lsn,
            total,
            // A garbage length must not reserve memory: the next page header
            // catches it after at most one page.
            bytes: Vec::with_capacity(min(total as usize, XLOG_BLCKSZ as usize)),
            header_checked: false,
        });
        Ok(Step::Progress)
    }

    /// Checks the page header at the current position and moves past it
    /// (`XLogReaderValidatePageHeader`, plus the continuation checks of `XLogDecodeNextRecord`).
    fn read_page_header(&mut self) -> Result<Step, WalDecodeError> {
        let page = self.input.pos;
        let header = self.input.peek(LONG_PAGE_HEADER_LEN as u64);
        let available = header.len();
        let mut fields = Fields(header);
        let (Some(magic), Some(info), Some(_tli), Some(pageaddr), Some(rem_len)) = (
            fields.u16(),
            fields.u16(),
            fields.u32(),
            fields.u64(),
            fields.u32(),
        ) else {
            return Ok(Step::NeedMore);
        };
        if pageaddr != page {
            let at = match &self.state {
                State::InRecord(partial) => partial.lsn,
                _ => page,
            };
            self.state = State::End { at };
            self.input.buf = BytesMut::new();
            return Ok(Step::NeedMore);
        }
        let lsn = Lsn::new(page);
        if magic != XLOG_PAGE_MAGIC {
            return Err(WalDecodeError::BadMagic { page: lsn, magic });
        }
        let long = info & XLP_LONG_HEADER != 0;
        if info & !XLP_ALL_FLAGS != 0 || (!long && page.is_multiple_of(self.seg.bytes())) {
            return Err(WalDecodeError::BadPageFlags { page: lsn, info });
        }
        let header_len = if long {
            // Skip the 4 bytes of padding that align xlp_sysid.
            let (Some(_), Some(sysid), Some(seg_size), Some(blcksz)) =
                (fields.u32(), fields.u64(), fields.u32(), fields.u32())
            else {
                return Ok(Step::NeedMore);
            };
            self.check_long_header(lsn, sysid, seg_size, blcksz)?;
            LONG_PAGE_HEADER_LEN
        } else {
            SHORT_PAGE_HEADER_LEN
        };
        if available < header_len {
            return Ok(Step::NeedMore);
        }
        let continues = info & XLP_FIRST_IS_CONTRECORD != 0;
        let overwrites = info & XLP_FIRST_IS_OVERWRITE_CONTRECORD != 0;
        let missing = match &self.state {
            State::InRecord(partial) => Some(partial.missing()),
            State::Continuation { remaining } => Some(*remaining),
            _ => None,
        };
        match missing {
            // The record was cut short and its end overwritten: drop it, as
            // PostgreSQL does, and read on from this page.
            Some(_) if overwrites => self.state = State::BetweenRecords,
            Some(_) if !continues => return Err(WalDecodeError::MissingContinuation { page: lsn }),
            Some(expected) if rem_len != expected || rem_len == 0 => {
                return Err(WalDecodeError::ContinuationLength {
                    page: lsn,
                    found: rem_len,
                    expected,
                });
            }
            Some(_) => {}
            None if continues && self.first_page && rem_len > 0 => {
                self.state = State::Continuation { remaining: rem_len };
            }
            None if continues && self.first_page => {}
            None if continues => return Err(WalDecodeError::UnexpectedContinuation { page: lsn }),
            None => {}
        }
        self.first_page = false;
        self.input.consume(header_len);
        Ok(Step::Progress)
    }

    fn check_long_header(
        &mut self,
        page: Lsn,
        sysid: u64,
        seg_size: u32,
        blcksz: u32,
    ) -> Result<(), WalDecodeError> {
        if u64::from(seg_size) != self.seg.bytes() {
            return Err(WalDecodeError::SegmentSizeMismatch {
                page,
                found: seg_size,
                expected: self.seg.bytes(),
            });
        }
        if u64::from(blcksz) != XLOG_BLCKSZ {
            return Err(WalDecodeError::PageSizeMismatch {
                page,
                found: blcksz,
            });
        }
        match self.sysid {
            Some(expected) if expected != sysid => Err(WalDecodeError::SystemIdMismatch {
                page,
                found: sysid,
                expected,
            }),
            _ => {
                self.sysid = Some(sysid);
                Ok(())
            }
        }
    }

    /// Verifies the CRC of a fully assembled record and decodes it (`ValidXLogRecord`, `DecodeXLogRecord`).
    fn finish_record(&mut self, partial: Partial) -> Result<WalRecord, WalDecodeError> {
        let lsn = Lsn::new(partial.lsn);
        let mut bytes = partial.bytes;
        let (header, body) = bytes.split_at(min(RECORD_HEADER_LEN, bytes.len()));
        let mut fields = Fields(header);
        let (Some(_len), Some(xid), Some(_prev), Some(info), Some(rmid), Some(_pad), Some(stored)) = (
            fields.u32(),
            fields.u32(),
            fields.u64(),
            fields.u8(),
            fields.u8(),
            fields.u16(),
            fields.u32(),
        ) else {
            return Err(WalDecodeError::BadRecordLength {
                lsn,
                len: partial.total,
            });
        };
        let computed = crc32c::crc32c_append(
            crc32c::crc32c(body),
            header.get(..XL_CRC_OFFSET).unwrap_or_default(),
        );
        if computed != stored {
            return Err(WalDecodeError::Crc {
                lsn,
                stored,
                computed,
            });
        }
        let main = main_data_range(&bytes, lsn)?;
        bytes.truncate(main.end);
        let main_data = bytes.split_off(main.start);

        let end = maxalign(self.input.pos);
        let end_lsn = if rmid == RM_XLOG_ID && info & !XLR_INFO_MASK == XLOG_SWITCH {
            let seg = self.seg.bytes();
            let next_segment = end.div_ceil(seg) * seg;
            self.state = State::SwitchPadding {
                until: next_segment,
            };
            next_segment
        } else {
            end
        };
        self.prev = Some(partial.lsn);
        Ok(WalRecord {
            lsn,
            end_lsn: Lsn::new(end_lsn),
            xid,
            rmid,
            info,
            main_data,
        })
    }
}

/// Checks the header fields once the whole header is here (`ValidXLogRecordHeader`).
fn check_header(bytes: &[u8], lsn: u64, prev: Option<u64>) -> Result<(), WalDecodeError> {
    let mut fields = Fields(bytes);
    let (Some(_len), Some(_xid), Some(xl_prev), Some(_info), Some(rmid)) = (
        fields.u32(),
        fields.u32(),
        fields.u64(),
        fields.u8(),
        fields.u8(),
    ) else {
        return Ok(());
    };
    if rmid > RM_MAX_BUILTIN_ID && rmid < RM_MIN_CUSTOM_ID {
        return Err(WalDecodeError::UnknownResourceManager {
            lsn: Lsn::new(lsn),
            rmid,
        });
    }
    // Reading sequentially, xl_prev must name the record just read; the first
    // record can only be checked for pointing backwards.
    let linked = match prev {
        Some(prev) => xl_prev == prev,
        None => xl_prev < lsn,
    };
    if !linked {
        return Err(WalDecodeError::BadPrevLink {
            lsn: Lsn::new(lsn),
            prev: Lsn::new(xl_prev),
        });
    }
    Ok(())
}

/// Walks the block headers after the record header to find the main data,
/// which comes last (`DecodeXLogRecord`).
fn main_data_range(record: &[u8], lsn: Lsn) -> Result<Range<usize>, WalDecodeError> {
    let bad = |detail: String| WalDecodeError::BadBlockHeaders { lsn, detail };
    let short = || bad("the headers run past the record's end".to_owned());
    let mut fields = Fields(record.get(RECORD_HEADER_LEN..).unwrap_or_default());
    // Bytes of block images, block data and main data announced so far.
    let mut data_len: u64 = 0;
    let mut main_len: u64 = 0;
    let mut last_block: Option<u8> = None;
    let mut have_rel = false;
    while fields.len() as u64 > data_len {
        let block_id = fields.u8().ok_or_else(short)?;
        match block_id {
            XLR_BLOCK_ID_DATA_SHORT => {
                main_len = u64::from(fields.u8().ok_or_else(short)?);
                data_len += main_len;
                break;
            }
            XLR_BLOCK_ID_DATA_LONG => {
                main_len = u64::from(fields.u32().ok_or_else(short)?);
                data_len += main_len;
                break;
            }
            XLR_BLOCK_ID_ORIGIN => {
                fields.u16().ok_or_else(short)?;
            }
            XLR_BLOCK_ID_TOPLEVEL_XID => {
                fields.u32().ok_or_else(short)?;
            }
            0..=XLR_MAX_BLOCK_ID => {
                if last_block.is_some_and(|last| block_id <= last) {
                    return Err(bad(format!("out-of-order block id {block_id}")));
                }
                last_block = Some(block_id);
                let fork_flags = fields.u8().ok_or_else(short)?;
                let block_data = fields.u16().ok_or_else(short)?;
                if (fork_flags & BKPBLOCK_HAS_DATA != 0) != (block_data != 0) {
                    return Err(bad(format!(
                        "block {block_id} has {block_data} bytes of data against its flags {fork_flags:#04X}"
                    )));
                }
                data_len += u64::from(block_data);
                if fork_flags & BKPBLOCK_HAS_IMAGE != 0 {
                    let image_len = fields.u16().ok_or_else(short)?;
                    let _hole_offset = fields.u16().ok_or_else(short)?;
                    let image_info = fields.u8().ok_or_else(short)?;
                    if image_info & BKPIMAGE_COMPRESSED != 0 && image_info & BKPIMAGE_HAS_HOLE != 0
                    {
                        let _hole_length = fields.u16().ok_or_else(short)?;
                    }
                    data_len += u64::from(image_len);
                }
                if fork_flags & BKPBLOCK_SAME_REL == 0 {
                    fields.skip(REL_FILE_NODE_LEN).ok_or_else(short)?;
                    have_rel = true;
                } else if !have_rel {
                    return Err(bad(format!(
                        "block {block_id} refers to the previous block's relation, but there is none"
                    )));
                }
                let _block_no = fields.u32().ok_or_else(short)?;
            }
            _ => return Err(bad(format!("invalid block id {block_id}"))),
        }
    }
    if fields.len() as u64 != data_len {
        return Err(bad(format!(
            "they announce {data_len} bytes of data, but {} follow",
            fields.len()
        )));
    }
    let start = usize::try_from(main_len)
        .ok()
        .and_then(|main_len| record.len().checked_sub(main_len))
        .ok_or_else(short)?;
    Ok(start..record.len())
}

/// PostgreSQL's `MAXALIGN` for 64-bit servers: rounds up to a multiple of 8.
fn maxalign(pos: u64) -> u64 {
    pos.next_multiple_of(8)
}

/// A little-endian field reader over a byte slice.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        self.0 = self.0.get(n..)?;
        Some(())
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn the_next_record_starts_past_a_page_header() {
        let seg = WalSegSize::new(1 << 20).unwrap();
        let at = |raw: u64| next_record_start(Lsn::new(raw), seg).as_u64();
        assert_eq!(at(0x70_00D8), 0x70_00D8);
        assert_eq!(at(0x70_2000), 0x70_2018);
        assert_eq!(at(0x80_0000), 0x80_0028);
    }

    #[test]
    fn keeps_no_bytes_it_has_consumed() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/pg15-wal/000000010000000000000007.lz4"
        );
        let mut wal = Vec::new();
        lz4_flex::frame::FrameDecoder::new(std::fs::File::open(path).unwrap())
            .read_to_end(&mut wal)
            .unwrap();
        let seg = WalSegSize::new(1 << 20).unwrap();
        let mut reader = WalRecordReader::new(Lsn::new(0x70_0000), seg);
        const FEED: usize = 64 * 1024;
        let mut records = 0;
        for chunk in wal.chunks(FEED) {
            reader.feed(chunk);
            while reader.next_record().unwrap().is_some() {
                records += 1;
            }
            // What stays is at most an incomplete page header or record length;
            // the rest is in the record being assembled, no more than it needs.
            assert!(reader.input.buf.len() < LONG_PAGE_HEADER_LEN);
            assert!(reader.input.buf.capacity() <= 4 * FEED);
            if let State::InRecord(partial) = &reader.state {
                assert!(partial.bytes.len() < partial.total as usize);
            }
        }
        assert!(records > 500);
    }
}
