//! Received binlog events → objects → store. The archiver owns the durable position.
//!
//! Events arrive in file order. The file in progress is shipped as pieces on every
//! [`BinlogArchiver::flush`], each with the transaction index of its range. Pieces never
//! cross a multiple of [`SPAN_BYTES`]: when a span fills, it becomes one piece and leaves
//! memory, so the archiver holds at most one span of a file however long the file grows.
//! When the server moves to the next file, a file that fits in one span becomes one object
//! with one index, superseding its pieces; a longer one keeps its pieces and gains an end
//! marker. Events that exist only in the dump stream (the fake ROTATE, a re-sent
//! FORMAT_DESCRIPTION, heartbeats) are never written, so the archived bytes are the
//! server's file byte for byte.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::object::{self, Codec, Framer};
use logship_protocol::archive::pieces::{self, PiecePlan, PieceRange, PieceStack};
use logship_protocol::mysql::index::{IndexEntry, encode_entry};
use logship_protocol::mysql::key::{self as binlog_key, BinlogKey, SPAN_BYTES, ServerNo};
use logship_protocol::mysql::{
    BINLOG_MAGIC, BinlogError, BinlogFileName, BinlogPos, EventData, EventDecoder,
    TransactionTracker, TrxGtid, TrxOutcome,
};

use crate::archiver::{Finished, UploadQueue};
use crate::mysql::progress::BinlogProgress;
use crate::store::Store;

/// Compressed bytes allowed in flight before `append` waits for uploads to finish.
const MAX_IN_FLIGHT_BYTES: usize = 8 << 20;

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
    /// The archive holds `file` up to the end of `chain` in pieces: stream it again from
    /// its start, keep its last span in memory, and ship only what is new.
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
    /// Nothing archived yet of `server` (the first server, or one that takes over the
    /// stream): start with `file`, from its beginning.
    Start {
        server: ServerNo,
        file: BinlogFileName,
    },
}

impl ResumeFrom {
    /// The server the archive continues with.
    pub fn server(&self) -> ServerNo {
        match self {
            ResumeFrom::Pieces { server, .. }
            | ResumeFrom::AfterFile { server, .. }
            | ResumeFrom::Start { server, .. } => *server,
        }
    }

    /// Where the dump must start for this archiver.
    pub fn dump_start(&self) -> BinlogPos {
        match self {
            ResumeFrom::Pieces { file, .. } | ResumeFrom::Start { file, .. } => {
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
    /// A piece of the span in progress, which the span's stack records once durable.
    Piece {
        file: BinlogFileName,
        plan: PiecePlan,
    },
    /// Anything else (a complete file, a full span, an end marker, an index): nothing
    /// to record when it is durable.
    Final,
}

/// Objects to delete once the archive is durable up to a position.
struct Cleanup {
    after: ArchivePos,
    keys: Vec<String>,
    /// Every object of this file that its complete form supersedes.
    file: Option<Completed>,
}

/// A file stored complete, and how.
struct Completed {
    name: BinlogFileName,
    len: u32,
    /// As one object (else as its pieces and an end marker).
    whole: bool,
}

/// The file in progress: how long it is so far, and its bytes from the start of the
/// span in progress (earlier spans are durable and dropped).
struct FileBuffer {
    name: BinlogFileName,
    /// The file's length so far.
    len: u32,
    /// Bytes `[stack.base(), len)` of the file.
    tail: Vec<u8>,
    /// Durable pieces of the span in progress.
    stack: PieceStack,
    /// Transactions committed in the span in progress so far, in order.
    index: Vec<IndexEntry>,
}

impl FileBuffer {
    /// The file `name`, its bytes kept in `tail` (emptied first, its allocation reused).
    fn new(name: BinlogFileName, stack: PieceStack, mut tail: Vec<u8>) -> FileBuffer {
        tail.clear();
        let mut buffer = FileBuffer {
            name,
            len: 0,
            tail,
            stack,
            index: Vec::new(),
        };
        buffer.push(&BINLOG_MAGIC);
        buffer
    }

    fn base(&self) -> u32 {
        self.stack.base()
    }

    /// Appends bytes at the end of the file, keeping those from the span in progress on.
    fn push(&mut self, bytes: &[u8]) {
        let skip = self.base().saturating_sub(self.len) as usize;
        self.tail
            .extend_from_slice(bytes.get(skip..).unwrap_or_default());
        self.len = self.len.saturating_add(bytes.len() as u32);
    }

    /// The bytes of `range`, which lies within the span in progress.
    fn bytes(&self, range: PieceRange) -> &[u8] {
        let start = (range.start() - self.base()) as usize;
        let end = (range.end() - self.base()) as usize;
        self.tail.get(start..end).unwrap_or_default()
    }

    /// Leaves the span in progress once it is stored: the next one starts at `end`.
    fn next_span(&mut self, end: u32) {
        let consumed = (end - self.base()) as usize;
        self.tail.drain(..consumed.min(self.tail.len()));
        self.stack = PieceStack::starting_at(end, Vec::new());
        self.index.retain(|entry| entry.end > end);
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
    /// Where this server took over the stream: transactions that end at or before it
    /// were archived from the previous server, so they get no index line.
    takeover: Option<BinlogPos>,
    piece_in_flight: bool,
    /// Compresses every piece and file of this archiver in the same buffer.
    framer: Framer,
    /// The buffer of the file completed last, for the next one.
    spare_tail: Vec<u8>,
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
                let buffer = FileBuffer::new(file.clone(), span_in_progress(chain), span_buffer());
                (*server, Some(buffer), pos(*server, file, end))
            }
            ResumeFrom::AfterFile { server, file, len } => {
                (*server, None, pos(*server, file, *len))
            }
            ResumeFrom::Start { server, file } => (
                *server,
                Some(FileBuffer::new(
                    file.clone(),
                    PieceStack::default(),
                    span_buffer(),
                )),
                pos(*server, file, 0),
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
            takeover: None,
            piece_in_flight: false,
            framer: Framer::for_content(SPAN_BYTES as usize),
            spare_tail: Vec::new(),
            cleanups: VecDeque::new(),
            progress,
        }
    }

    /// Leaves the transactions that end at or before `start`, where this server took over
    /// the stream, out of the index: they are the previous server's, archived from it.
    pub fn with_takeover(mut self, start: Option<BinlogPos>) -> BinlogArchiver {
        self.takeover = start;
        self
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
            (Some(current), _) => {
                Some(BinlogPos::new(current.name.clone(), u64::from(current.len)))
            }
            (None, Some((file, len))) => Some(BinlogPos::new(file.clone(), u64::from(*len))),
            (None, None) => None,
        }
    }

    /// The end of the archive once everything received is durable: after a restart that
    /// re-streams a file from its start, the end of its durable pieces.
    pub fn archive_end(&self) -> Option<BinlogPos> {
        match (&self.current, &self.completed) {
            (Some(current), _) => Some(BinlogPos::new(
                current.name.clone(),
                u64::from(current.len.max(current.stack.end())),
            )),
            (None, Some((file, len))) => Some(BinlogPos::new(file.clone(), u64::from(*len))),
            (None, None) => None,
        }
    }

    /// Whether what was received ends with a complete file, before any byte of the next.
    pub fn is_between_files(&self) -> bool {
        self.current.is_none() && self.completed.is_some()
    }

    /// True while uploads are still running.
    pub fn is_busy(&self) -> bool {
        self.uploads.is_busy()
    }

    /// Takes one event of the dump stream, as received.
    pub async fn append(&mut self, raw: Bytes) -> Result<(), ArchiveError> {
        let offset = self.current.as_ref().map_or(0, |c| u64::from(c.len));
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
        current.push(event.raw());
        let end32 = u32::try_from(end).unwrap_or(u32::MAX);
        self.progress.received(current.name.index(), end32);
        let end_pos = BinlogPos::new(current.name.clone(), end);
        let taken_over = self
            .takeover
            .as_ref()
            .is_none_or(|start| start.file() != &current.name || end > start.offset());
        if let Some(committed) = self.transactions.push(&event, &end_pos)
            && committed.outcome != TrxOutcome::XaPrepare
            && end > u64::from(current.base())
            && taken_over
        {
            let at = pos(self.server, &current.name, end32);
            self.progress.committed(at, committed.commit_time);
            current.index.push(IndexEntry {
                end: end32,
                commit_time: committed.commit_time,
                gtid: gtid_text(&committed.gtid),
            });
        }
        while self
            .current
            .as_ref()
            .is_some_and(|c| c.len.saturating_sub(c.base()) >= SPAN_BYTES)
        {
            self.seal_span().await;
        }
        if let EventData::Rotate(rotate) = event.data() {
            // The last event of a file the server closed: the next one follows.
            let next = file_name(&rotate.next_file)?;
            self.complete_file().await;
            self.start_file(next);
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
        // A dump resumed after a complete file starts in it, at its end: stay between files.
        if self.current.is_none() && self.completed.as_ref().is_some_and(|(f, _)| *f == next) {
            return Ok(());
        }
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.len as usize > BINLOG_MAGIC.len())
        {
            self.complete_file().await;
        }
        self.start_file(next);
        Ok(())
    }

    /// Moves on to the file `name`, in the buffer of the file before: a buffer per file
    /// would grow by doubling all over again, and what the allocator freed it would keep.
    fn start_file(&mut self, name: BinlogFileName) {
        let tail = match self.current.take() {
            Some(file) => file.tail,
            None => std::mem::take(&mut self.spare_tail),
        };
        let tail = if tail.capacity() == 0 {
            span_buffer()
        } else {
            tail
        };
        self.current = Some(FileBuffer::new(name, PieceStack::default(), tail));
    }

    /// Stores the span in progress, which is full, as one piece, and moves to the next.
    async fn seal_span(&mut self) {
        let Some(current) = self.current.as_ref() else {
            return;
        };
        let end = current.base() + SPAN_BYTES;
        if let Some(plan) = current.stack.plan(end, true) {
            self.upload_piece(&plan, UploadKind::Final);
        }
        if let Some(current) = self.current.as_mut() {
            current.next_span(end);
        }
        self.wait_in_flight().await;
    }

    async fn complete_file(&mut self) {
        let Some(file) = self.current.as_ref() else {
            return;
        };
        let (name, len, whole) = (file.name.clone(), file.len, file.base() == 0);
        let tail = file.stack.plan(len, true);
        let end = pos(self.server, &name, len);
        if whole {
            self.upload_whole_file();
        } else {
            if let Some(plan) = tail {
                self.upload_piece(&plan, UploadKind::Final);
            }
            let key = BinlogKey::End {
                server: self.server,
                file: name,
                len,
            }
            .format(&self.source);
            self.uploads.start(
                key,
                object::encode(&[], Codec::None),
                0,
                end,
                UploadKind::Final,
            );
        }
        let Some(file) = self.current.take() else {
            return;
        };
        self.completed = Some((file.name.clone(), len));
        self.spare_tail = file.tail;
        self.cleanups.push_back(Cleanup {
            after: end,
            keys: Vec::new(),
            file: Some(Completed {
                name: file.name,
                len,
                whole,
            }),
        });
        self.piece_in_flight = false;
        self.wait_in_flight().await;
    }

    /// Uploads the file in progress, which fits in one span, as one object with its index.
    fn upload_whole_file(&mut self) {
        let Some(file) = self.current.as_ref() else {
            return;
        };
        let Some(range) = PieceRange::new(0, file.len) else {
            return;
        };
        let end = pos(self.server, &file.name, file.len);
        let content = file.bytes(range);
        let stored = self.framer.frame(content, Codec::Lz4).to_vec();
        let index = file.index_of(range);
        let key = BinlogKey::File {
            server: self.server,
            file: file.name.clone(),
        }
        .format(&self.source);
        let index_key = BinlogKey::Index {
            server: self.server,
            file: file.name.clone(),
            range,
        }
        .format(&self.source);
        let raw_len = content.len() as u64;
        self.uploads
            .start(key, stored, raw_len, end, UploadKind::Final);
        self.uploads.start(
            index_key,
            object::encode(&index, Codec::None),
            index.len() as u64,
            end,
            UploadKind::Final,
        );
    }

    async fn wait_in_flight(&mut self) {
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
        let Some(plan) = current.stack.plan(current.len, false) else {
            return;
        };
        let kind = UploadKind::Piece {
            file: current.name.clone(),
            plan: plan.clone(),
        };
        self.upload_piece(&plan, kind);
        self.piece_in_flight = true;
    }

    /// Uploads the piece `plan` names, with its index, from the span in progress; the
    /// pieces it supersedes are deleted once it is durable.
    fn upload_piece(&mut self, plan: &PiecePlan, kind: UploadKind) {
        let Some(current) = self.current.as_ref() else {
            return;
        };
        let range = plan.piece;
        let bytes = current.bytes(range);
        // Compressed on this worker thread: `block_in_place` would hand its core to another
        // thread, and each thread that allocates keeps a malloc arena of its own.
        let stored = self.framer.frame(bytes, Codec::Lz4).to_vec();
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
        let (piece, index_object) = (piece_key(range), index_key(range));
        self.uploads.start(
            index_object,
            object::encode(&index, Codec::None),
            index.len() as u64,
            end,
            UploadKind::Final,
        );
        self.uploads
            .start(piece, stored, u64::from(range.len()), end, kind);
    }

    fn finish(&mut self, finished: Finished<UploadKind, ArchivePos>) -> bool {
        if let UploadKind::Piece { file, plan } = &finished.kind {
            self.piece_in_flight = false;
            // A piece of a span that has since been stored whole is superseded already.
            if let Some(current) = self.current.as_mut()
                && &current.name == file
                && plan.piece.start() >= current.base()
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
        let complete = cleanup.file.map(|completed| {
            let prefix = binlog_key::file_prefix(&self.source, self.server, &completed.name);
            (prefix, completed)
        });
        let mut keys = cleanup.keys;
        tokio::spawn(async move {
            if let Some((prefix, completed)) = complete {
                match store.list(&prefix).await {
                    Ok(objects) => {
                        let listed = objects.into_iter().map(|o| o.key).collect();
                        keys.extend(superseded_by_complete(listed, &completed));
                    }
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

/// The objects of a file (as listed under its prefix) that its complete form supersedes:
/// every piece and partial index of a file stored whole; every piece, index and end marker
/// off the final chain of a file stored as pieces.
fn superseded_by_complete(listed: Vec<String>, completed: &Completed) -> Vec<String> {
    let parsed: Vec<(String, BinlogKey)> = listed
        .into_iter()
        .filter_map(|key| Some((BinlogKey::parse(&key).ok()?.1, key)))
        .map(|(parsed, key)| (key, parsed))
        .collect();
    let pieces: Vec<PieceRange> = parsed
        .iter()
        .filter_map(|(_, key)| match key {
            BinlogKey::Piece { range, .. } => Some(*range),
            _ => None,
        })
        .collect();
    let chain = if completed.whole {
        Vec::new()
    } else {
        pieces::chain(&pieces)
    };
    let whole_file = PieceRange::new(0, completed.len);
    parsed
        .into_iter()
        .filter(|(_, key)| match key {
            BinlogKey::Piece { range, .. } => !chain.contains(range),
            BinlogKey::Index { range, .. } if completed.whole => Some(*range) != whole_file,
            BinlogKey::Index { range, .. } => !chain.contains(range),
            BinlogKey::End { len, .. } => *len != completed.len,
            BinlogKey::File { .. } => false,
        })
        .map(|(key, _)| key)
        .collect()
}

/// The stack of the span in progress of a file archived up to the end of `chain`: the
/// pieces after the last span boundary the chain reaches.
fn span_in_progress(chain: &[PieceRange]) -> PieceStack {
    let base = chain
        .iter()
        .map(|piece| piece.end())
        .filter(|end| end % SPAN_BYTES == 0)
        .max()
        .unwrap_or(0);
    let rest = chain
        .iter()
        .filter(|p| p.start() >= base)
        .copied()
        .collect();
    PieceStack::starting_at(base, rest)
}

/// A buffer for a file's span in progress, with room for the span and an event past it
/// (its pages cost memory only once written).
fn span_buffer() -> Vec<u8> {
    Vec::with_capacity(2 * SPAN_BYTES as usize)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u32, end: u32) -> PieceRange {
        PieceRange::new(start, end).unwrap()
    }

    const S: u32 = SPAN_BYTES;

    #[test]
    fn the_span_in_progress_starts_after_the_last_full_span() {
        assert_eq!(span_in_progress(&[]), PieceStack::default());
        let small = [r(0, 100), r(100, 120)];
        assert_eq!(
            span_in_progress(&small),
            PieceStack::starting_at(0, small.to_vec())
        );
        let long = [r(0, S), r(S, 2 * S), r(2 * S, 2 * S + 10)];
        assert_eq!(
            span_in_progress(&long),
            PieceStack::starting_at(2 * S, vec![r(2 * S, 2 * S + 10)])
        );
        let just_sealed = [r(0, S)];
        assert_eq!(
            span_in_progress(&just_sealed),
            PieceStack::starting_at(S, Vec::new())
        );
    }

    fn key(name: &str) -> String {
        format!("shop/binlog/00000001/binlog.000001{name}")
    }

    #[test]
    fn a_file_stored_whole_supersedes_its_pieces_and_partial_indexes() {
        let listed = [
            ".partial.00000000-00000010",
            ".partial.00000010-00000020",
            ".index.00000000-00000010",
            ".index.00000000-00000020",
        ]
        .map(key)
        .to_vec();
        let completed = Completed {
            name: BinlogFileName::new("binlog.000001").unwrap(),
            len: 0x20,
            whole: true,
        };
        assert_eq!(
            superseded_by_complete(listed, &completed),
            [
                ".partial.00000000-00000010",
                ".partial.00000010-00000020",
                ".index.00000000-00000010"
            ]
            .map(key)
        );
    }

    #[test]
    fn a_file_stored_as_pieces_keeps_its_final_chain() {
        let listed = [
            ".partial.00000000-00800000",
            ".partial.00000000-00000010",
            ".index.00000000-00800000",
            ".index.00000000-00000010",
            ".partial.00800000-00800100",
            ".index.00800000-00800100",
            ".end.00800100",
            ".end.00800050",
        ]
        .map(key)
        .to_vec();
        let completed = Completed {
            name: BinlogFileName::new("binlog.000001").unwrap(),
            len: S + 0x100,
            whole: false,
        };
        assert_eq!(
            superseded_by_complete(listed, &completed),
            [
                ".partial.00000000-00000010",
                ".index.00000000-00000010",
                ".end.00800050"
            ]
            .map(key)
        );
    }
}
