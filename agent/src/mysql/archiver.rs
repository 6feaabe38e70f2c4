//! Received binlog events → objects → store. The archiver owns the durable position.
//!
//! Events arrive in file order. The file in progress is held from offset 0 (the magic)
//! and shipped as pieces on every [`BinlogArchiver::flush`], each with the transaction
//! index of its range; when the server moves to the next file, the whole file becomes
//! one object with one index, and they supersede the pieces. Events that exist only in
//! the dump stream (the fake ROTATE, a re-sent FORMAT_DESCRIPTION, heartbeats) are
//! never written, so the archived bytes are the server's file byte for byte.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::object::{self, Codec};
use logship_protocol::archive::pieces::{PiecePlan, PieceRange, PieceStack};
use logship_protocol::mysql::index::{IndexEntry, encode_entry};
use logship_protocol::mysql::key::{self as binlog_key, BinlogKey, ServerNo};
use logship_protocol::mysql::{
    BINLOG_MAGIC, BinlogError, BinlogFileName, BinlogPos, EventData, EventDecoder,
    TransactionTracker, TrxGtid, TrxOutcome,
};

use crate::archiver::{Finished, UploadQueue};
use crate::mysql::progress::BinlogProgress;
use crate::store::Store;

/// Compressed bytes allowed in flight before `append` waits for uploads to finish.
const MAX_IN_FLIGHT_BYTES: usize = 24 << 20;

/// A position in a source's archive: which server, which file, how far into it.
/// Files of one server are ordered by their number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArchivePos {
    server: ServerNo,
    file: u32,
    offset: u32,
}

impl ArchivePos {
    /// The file's number (42 for `binlog.000042`).
    pub fn file(&self) -> u32 {
        self.file
    }

    /// The offset in the file.
    pub fn offset(&self) -> u32 {
        self.offset
    }
}

/// Why the archiver cannot take an event; the stream is restarted from the archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("a binlog event failed its checks: {0} (reconnecting)")]
    Event(#[from] BinlogError),
    #[error(
        "received an event of {file} ending at {got} but the file so far ends at {expected} \
         (the stream skipped or repeated bytes; reconnecting)"
    )]
    OutOfOrder {
        file: BinlogFileName,
        expected: u64,
        got: u64,
    },
    #[error("received an event of a binlog file before the server named the file (reconnecting)")]
    NoFile,
    #[error("the server names the next binlog file {name:?}, which is not a binlog file name")]
    BadFileName { name: String },
    #[error("binlog file {file} grew past 4 GiB, beyond what binlog positions address")]
    TooLarge { file: BinlogFileName },
}

/// Where a new archiver continues.
#[derive(Debug, Clone)]
pub enum ResumeFrom {
    /// The archive holds `file` up to `durable` in pieces: stream it again from its start,
    /// so that its bytes are whole in memory, and ship only what is new.
    Pieces {
        server: ServerNo,
        file: BinlogFileName,
        chain: Vec<PieceRange>,
    },
    /// The archive holds `file` complete, `len` bytes: continue after it.
    AfterFile {
        server: ServerNo,
        file: BinlogFileName,
        len: u32,
    },
    /// Nothing archived yet: start with `file` on the first server.
    Empty { file: BinlogFileName },
}

impl ResumeFrom {
    /// The server the archive continues with.
    pub fn server(&self) -> ServerNo {
        match self {
            ResumeFrom::Pieces { server, .. } | ResumeFrom::AfterFile { server, .. } => *server,
            ResumeFrom::Empty { .. } => ServerNo::FIRST,
        }
    }

    /// Where the dump must start for this archiver.
    pub fn dump_start(&self) -> BinlogPos {
        match self {
            ResumeFrom::Pieces { file, .. } | ResumeFrom::Empty { file } => {
                BinlogPos::new(file.clone(), BINLOG_MAGIC.len() as u64)
            }
            ResumeFrom::AfterFile { file, len, .. } => {
                BinlogPos::new(file.clone(), u64::from(*len))
            }
        }
    }
}

/// What an upload makes durable.
enum UploadKind {
    /// A complete file or its whole-file index.
    File,
    /// A piece of the file in progress.
    Piece {
        file: BinlogFileName,
        plan: PiecePlan,
    },
    /// The index of a piece.
    PieceIndex,
}

/// Objects to delete once the archive is durable up to a position.
struct Cleanup {
    after: ArchivePos,
    keys: Vec<String>,
    /// Every piece and piece index of this file, when it is stored complete with this length.
    file: Option<(BinlogFileName, u32)>,
}

/// The file in progress, from offset 0.
struct FileBuffer {
    name: BinlogFileName,
    bytes: Vec<u8>,
    /// Durable pieces of it.
    stack: PieceStack,
    /// Transactions committed in it so far, in order.
    index: Vec<IndexEntry>,
}

impl FileBuffer {
    fn new(name: BinlogFileName, stack: PieceStack) -> FileBuffer {
        FileBuffer {
            name,
            bytes: BINLOG_MAGIC.to_vec(),
            stack,
            index: Vec::new(),
        }
    }

    fn len(&self) -> u32 {
        u32::try_from(self.bytes.len()).unwrap_or(u32::MAX)
    }

    /// The index lines of the transactions that end within `range`.
    fn index_of(&self, range: PieceRange) -> Vec<u8> {
        let mut out = Vec::new();
        for entry in &self.index {
            if entry.end > range.start() && entry.end <= range.end() {
                encode_entry(entry, &mut out);
            }
        }
        out
    }
}

/// Turns a binlog dump stream into durable objects for one source.
pub struct BinlogArchiver {
    source: SourceName,
    server: ServerNo,
    current: Option<FileBuffer>,
    /// The last file completed, and its length: where a dump continues between files.
    completed: Option<(BinlogFileName, u32)>,
    decoder: EventDecoder,
    transactions: TransactionTracker,
    piece_in_flight: bool,
    uploads: UploadQueue<UploadKind, ArchivePos>,
    cleanups: VecDeque<Cleanup>,
    progress: BinlogProgress,
}

impl BinlogArchiver {
    /// An archiver that continues as `resume` says and reports to `progress`; the dump
    /// must start at [`ResumeFrom::dump_start`].
    pub fn new(
        store: Arc<dyn Store>,
        source: SourceName,
        mut progress: BinlogProgress,
        resume: &ResumeFrom,
    ) -> BinlogArchiver {
        let completed = match resume {
            ResumeFrom::AfterFile { file, len, .. } => Some((file.clone(), *len)),
            _ => None,
        };
        let (server, current, durable) = match resume {
            ResumeFrom::Pieces {
                server,
                file,
                chain,
            } => {
                let end = chain.last().map_or(0, |p| p.end());
                let buffer = FileBuffer::new(file.clone(), PieceStack::from_chain(chain.clone()));
                (*server, Some(buffer), pos(*server, file, end))
            }
            ResumeFrom::AfterFile { server, file, len } => {
                (*server, None, pos(*server, file, *len))
            }
            ResumeFrom::Empty { file } => (
                ServerNo::FIRST,
                Some(FileBuffer::new(file.clone(), PieceStack::default())),
                pos(ServerNo::FIRST, file, 0),
            ),
        };
        progress.durable(durable);
        BinlogArchiver {
            uploads: UploadQueue::new(store, progress.metrics().clone(), durable),
            source,
            server,
            current,
            completed,
            decoder: EventDecoder::new(),
            transactions: TransactionTracker::new(),
            piece_in_flight: false,
            cleanups: VecDeque::new(),
            progress,
        }
    }

    /// Where positions and commit times are reported.
    pub fn progress(&mut self) -> &mut BinlogProgress {
        &mut self.progress
    }

    /// The position up to which the archive is durable.
    pub fn durable(&self) -> ArchivePos {
        self.uploads.durable()
    }

    /// The end of what was received: where a new dump continues.
    pub fn received(&self) -> Option<BinlogPos> {
        match (&self.current, &self.completed) {
            (Some(current), _) => Some(BinlogPos::new(
                current.name.clone(),
                current.bytes.len() as u64,
            )),
            (None, Some((file, len))) => Some(BinlogPos::new(file.clone(), u64::from(*len))),
            (None, None) => None,
        }
    }

    /// True while uploads are still running.
    pub fn is_busy(&self) -> bool {
        self.uploads.is_busy()
    }

    /// Takes one event of the dump stream, as received.
    pub async fn append(&mut self, raw: Bytes) -> Result<(), ArchiveError> {
        let offset = self.current.as_ref().map_or(0, |c| c.bytes.len() as u64);
        let event = self.decoder.decode(raw, offset)?;
        if event.is_stream_only() {
            match event.data() {
                EventData::Rotate(rotate) => self.follow_rotate(&rotate.next_file).await?,
                EventData::Heartbeat { log_file } => self
                    .progress
                    .heartbeat(log_file, u64::from(event.header().log_pos)),
                EventData::HeartbeatV2 { log_file, position } => {
                    self.progress.heartbeat(log_file, *position)
                }
                _ => {}
            }
            return Ok(());
        }
        let Some(current) = self.current.as_mut() else {
            return Err(ArchiveError::NoFile);
        };
        let end = offset + event.raw().len() as u64;
        if u64::from(event.header().log_pos) != end {
            return Err(ArchiveError::OutOfOrder {
                file: current.name.clone(),
                expected: offset,
                got: u64::from(event.header().log_pos),
            });
        }
        if end > u64::from(u32::MAX) {
            return Err(ArchiveError::TooLarge {
                file: current.name.clone(),
            });
        }
        current.bytes.extend_from_slice(event.raw());
        let end32 = u32::try_from(end).unwrap_or(u32::MAX);
        self.progress.received(current.name.index(), end32);
        let end_pos = BinlogPos::new(current.name.clone(), end);
        if let Some(committed) = self.transactions.push(&event, &end_pos)
            && committed.outcome != TrxOutcome::XaPrepare
        {
            let at = pos(self.server, &current.name, end32);
            self.progress.committed(at, committed.commit_time);
            current.index.push(IndexEntry {
                end: end32,
                commit_time: committed.commit_time,
                gtid: gtid_text(&committed.gtid),
            });
        }
        if let EventData::Rotate(rotate) = event.data() {
            // The last event of a file the server closed: the next one follows.
            let next = file_name(&rotate.next_file)?;
            self.complete_file().await;
            self.current = Some(FileBuffer::new(next, PieceStack::default()));
        }
        Ok(())
    }

    /// Ships whatever of the file in progress is not yet durable, as one piece with its
    /// index. At most one piece is in flight; the next flush picks up the rest.
    pub fn flush(&mut self) {
        self.ship_piece();
    }

    /// Waits for one upload to finish. Returns true if the durable position moved.
    /// Never returns while nothing is in flight (for use in `select!`); cancel-safe.
    pub async fn wait_upload(&mut self) -> bool {
        let finished = self.uploads.next_finished().await;
        self.finish(finished)
    }

    /// Makes everything received durable: flushes, then waits for every upload.
    pub async fn drain(&mut self) {
        loop {
            if !self.piece_in_flight {
                self.ship_piece();
            }
            if !self.uploads.is_busy() {
                return;
            }
            self.wait_upload().await;
        }
    }

    /// A ROTATE the sender made up: it names the file whose events follow. A file other
    /// than the one in progress means the server moved on without a ROTATE in the file
    /// (it restarted), so the one in progress is complete.
    async fn follow_rotate(&mut self, next: &str) -> Result<(), ArchiveError> {
        let next = file_name(next)?;
        if self.current.as_ref().is_some_and(|c| c.name == next) {
            return Ok(());
        }
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.bytes.len() > BINLOG_MAGIC.len())
        {
            self.complete_file().await;
        }
        self.current = Some(FileBuffer::new(next, PieceStack::default()));
        Ok(())
    }

    async fn complete_file(&mut self) {
        let Some(file) = self.current.take() else {
            return;
        };
        let len = file.len();
        self.completed = Some((file.name.clone(), len));
        let range = PieceRange::new(0, len);
        let end = pos(self.server, &file.name, len);
        let index = range.map(|r| file.index_of(r)).unwrap_or_default();
        let content = file.bytes;
        let stored = tokio::task::block_in_place(|| object::encode(&content, Codec::Lz4));
        let key = BinlogKey::File {
            server: self.server,
            file: file.name.clone(),
        }
        .format(&self.source);
        self.uploads
            .start(key, stored, content.len() as u64, end, UploadKind::File);
        if let Some(range) = range {
            let key = BinlogKey::Index {
                server: self.server,
                file: file.name.clone(),
                range,
            }
            .format(&self.source);
            let raw_len = index.len() as u64;
            let stored = object::encode(&index, Codec::None);
            self.uploads
                .start(key, stored, raw_len, end, UploadKind::File);
        }
        self.cleanups.push_back(Cleanup {
            after: end,
            keys: Vec::new(),
            file: Some((file.name, len)),
        });
        self.piece_in_flight = false;
        while self.uploads.in_flight_bytes() > MAX_IN_FLIGHT_BYTES {
            self.wait_upload().await;
        }
    }

    fn ship_piece(&mut self) {
        if self.piece_in_flight {
            return;
        }
        let Some(current) = self.current.as_ref() else {
            return;
        };
        let Some(plan) = current.stack.plan(current.len(), false) else {
            return;
        };
        let range = plan.piece;
        let bytes = current
            .bytes
            .get(range.start() as usize..range.end() as usize)
            .unwrap_or_default();
        let stored = tokio::task::block_in_place(|| object::encode(bytes, Codec::Lz4));
        let index = current.index_of(range);
        let end = pos(self.server, &current.name, range.end());
        let (server, file) = (self.server, current.name.clone());
        let piece_key = |range| {
            BinlogKey::Piece {
                server,
                file: file.clone(),
                range,
            }
            .format(&self.source)
        };
        let index_key = |range| {
            BinlogKey::Index {
                server,
                file: file.clone(),
                range,
            }
            .format(&self.source)
        };
        let mut stale = Vec::new();
        for &old in &plan.superseded {
            stale.push(piece_key(old));
            stale.push(index_key(old));
        }
        self.cleanups.push_back(Cleanup {
            after: end,
            keys: stale,
            file: None,
        });
        self.piece_in_flight = true;
        let (piece, index_object) = (piece_key(range), index_key(range));
        self.uploads.start(
            index_object,
            object::encode(&index, Codec::None),
            index.len() as u64,
            end,
            UploadKind::PieceIndex,
        );
        self.uploads.start(
            piece,
            stored,
            u64::from(range.len()),
            end,
            UploadKind::Piece { file, plan },
        );
    }

    fn finish(&mut self, finished: Finished<UploadKind, ArchivePos>) -> bool {
        if let UploadKind::Piece { file, plan } = &finished.kind {
            self.piece_in_flight = false;
            if let Some(current) = self.current.as_mut()
                && &current.name == file
            {
                current.stack.commit(plan);
            }
        }
        let Some(durable) = finished.durable else {
            return false;
        };
        self.progress.durable(durable);
        while self.cleanups.front().is_some_and(|c| c.after <= durable) {
            if let Some(cleanup) = self.cleanups.pop_front() {
                self.run_cleanup(cleanup);
            }
        }
        true
    }

    /// Deletes objects that what is durable now supersedes.
    fn run_cleanup(&self, cleanup: Cleanup) {
        let store = self.uploads.store().clone();
        let complete = cleanup.file.map(|(file, len)| {
            (
                binlog_key::file_prefix(&self.source, self.server, &file),
                len,
            )
        });
        let mut keys = cleanup.keys;
        tokio::spawn(async move {
            if let Some((prefix, len)) = complete {
                match store.list(&prefix).await {
                    Ok(objects) => keys.extend(objects.into_iter().filter_map(|o| {
                        let superseded = match BinlogKey::parse(&o.key) {
                            Ok((_, BinlogKey::Piece { .. })) => true,
                            Ok((_, BinlogKey::Index { range, .. })) => {
                                (range.start(), range.end()) != (0, len)
                            }
                            _ => false,
                        };
                        superseded.then_some(o.key)
                    })),
                    Err(err) => tracing::warn!(%prefix, %err, "could not list superseded pieces"),
                }
            }
            for key in keys {
                if let Err(err) = store.delete(&key).await {
                    tracing::warn!(%key, %err, "could not delete a superseded object");
                }
            }
        });
    }
}

fn pos(server: ServerNo, file: &BinlogFileName, offset: u32) -> ArchivePos {
    ArchivePos {
        server,
        file: file.index(),
        offset,
    }
}

fn file_name(name: &str) -> Result<BinlogFileName, ArchiveError> {
    BinlogFileName::new(name).map_err(|_| ArchiveError::BadFileName {
        name: name.to_owned(),
    })
}

fn gtid_text(gtid: &TrxGtid) -> Option<String> {
    match gtid {
        TrxGtid::MariaDb(gtid) => Some(gtid.to_string()),
        TrxGtid::Mysql(gtid) => Some(gtid.to_string()),
        TrxGtid::None => None,
    }
}
