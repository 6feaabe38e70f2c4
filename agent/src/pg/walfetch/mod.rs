//! `logship wal-fetch FILE DEST`: PostgreSQL's `restore_command`, reading the archive back.
//!
//! Serves complete segments, `.history` files, and a segment still in progress
//! rebuilt from its pieces and padded with zeros to the segment size (zeros are
//! where PostgreSQL's replay sees the end of WAL).
//!
//! With prefetching, requests are served from the [`spool`], which a detached
//! [read-ahead worker](ahead) keeps filled with the segments that follow the one asked for
//! last, so that replay is not bound by the store's latency. A request the spool cannot
//! serve waits for the worker to spool it, or reads the store itself when the worker
//! could not (a segment still in pieces, a damaged object: the request reports those).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use logship_protocol::archive::identity::SourceIdentity;
use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::pieces::PieceRange;
use logship_protocol::pg::key::WalKey;
use logship_protocol::pg::segment::WalFileName;
use logship_protocol::pg::{SegmentNo, TimelineId, WalSegSize};

pub use crate::archive::Fetched;
use crate::archive::{ReadError, Retry, read_object, retrying};
use crate::fetchdest::write_dest;
use crate::identity::{IdentityError, read_identity};
use crate::store::{Store, StoreError};

pub mod ahead;
pub mod spool;

use ahead::Launcher;
use spool::Spool;

/// How many segments `wal-fetch` reads ahead unless told otherwise.
pub const DEFAULT_PREFETCH: usize = 8;

/// How long a request waits for the read-ahead worker to spool its segment before it
/// reads the store itself.
const SPOOL_WAIT: Duration = Duration::from_secs(60);

/// How often a waiting request looks into the spool.
const SPOOL_POLL: Duration = Duration::from_millis(5);

/// How often a segment is read again when a piece was merged away meanwhile.
const MERGE_ATTEMPTS: u32 = 4;

/// Why a fetch failed (anything but "not in the archive").
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(
        "store {store} holds no archive for source {source_name:?} (check --source and the store URL)"
    )]
    NoArchive { store: String, source_name: String },
    #[error(
        "source {source_name:?} is not a PostgreSQL archive (wal-fetch serves PostgreSQL WAL only)"
    )]
    NotPostgres { source_name: String },
    /// A WAL object that cannot be used; its line names the fix.
    #[error("{}", .0.with_fix(DAMAGED_WAL_FIX))]
    Read(ReadError),
    #[error(
        "object {key} disappeared while it was being read (run the fetch again: it was merged into a larger object meanwhile)"
    )]
    Vanished { key: String },
    #[error(
        "cannot write {path}: {reason} (check that the destination directory exists and is writable)"
    )]
    Dest { path: String, reason: String },
    #[error(
        "cannot use the prefetch spool {path}: {reason} (check that the server's pg_wal directory is writable, or pass --prefetch 0)"
    )]
    Spool { path: String, reason: String },
}

impl From<ReadError> for FetchError {
    fn from(err: ReadError) -> FetchError {
        match err {
            ReadError::Store(err) => FetchError::Store(err),
            damaged => FetchError::Read(damaged),
        }
    }
}

/// What to do about a damaged WAL object.
const DAMAGED_WAL_FIX: &str = "the archived copy is damaged; restore to a target before it, \
     or recover the object from a replica of the store";

/// Fetches `file` (a name PostgreSQL passes as `%f`) of `source` into `dest`, without
/// reading ahead.
pub async fn wal_fetch(
    store: &dyn Store,
    source: &SourceName,
    file: &str,
    dest: &Path,
) -> Result<Fetched, FetchError> {
    let seg = source_segment_size(store, source).await?;
    let Ok(name) = WalFileName::parse(file, seg) else {
        tracing::debug!(file, "not a file name the archive holds");
        return Ok(Fetched::NotInArchive);
    };
    fetch_named(store, source, seg, name, dest).await
}

/// Fetches `file` into `dest` like [`wal_fetch`], serving complete segments from the spool
/// beside `dest` and keeping a read-ahead worker (started with `launcher`) filling it with
/// the `prefetch` segments that follow.
pub async fn wal_fetch_prefetching(
    store: Arc<dyn Store>,
    source: &SourceName,
    file: &str,
    dest: &Path,
    prefetch: usize,
    launcher: &Launcher,
) -> Result<Fetched, FetchError> {
    if prefetch == 0 {
        return wal_fetch(store.as_ref(), source, file, dest).await;
    }
    let seg = source_segment_size(store.as_ref(), source).await?;
    let Ok(name) = WalFileName::parse(file, seg) else {
        tracing::debug!(file, "not a file name the archive holds");
        return Ok(Fetched::NotInArchive);
    };
    let WalFileName::Segment { tli, segno } = name else {
        return fetch_named(store.as_ref(), source, seg, name, dest).await;
    };
    let request = SpooledRequest::new(Spool::beside(dest, seg), file, dest, (tli, segno))?;
    if request.serve()? {
        tracing::debug!(file, "served from the prefetch spool");
        ahead::ensure_running(&request.spool, launcher);
        return Ok(Fetched::Found);
    }
    want(&request.spool, file);
    let mut worker = ahead::ensure_running(&request.spool, launcher);
    let waited = tokio::time::timeout(SPOOL_WAIT, async {
        loop {
            if request.serve()? {
                return Ok(true);
            }
            if request.worker_gave_up(&mut worker) {
                // One last look: the worker may have spooled it as it exited.
                return request.serve();
            }
            tokio::time::sleep(SPOOL_POLL).await;
        }
    })
    .await;
    let taken = match waited {
        Ok(taken) => taken?,
        Err(_) => {
            tracing::debug!(file, "the read-ahead worker is slow; reading the store");
            false
        }
    };
    if taken {
        tracing::debug!(file, "served from the prefetch spool after a wait");
        return Ok(Fetched::Found);
    }
    let fetched = fetch_named(store.as_ref(), source, seg, name, dest).await?;
    if fetched == Fetched::Found
        && let Some(next) = &request.next
    {
        want(&request.spool, next);
    }
    Ok(fetched)
}

/// Serves segment `file` from the spool beside `dest` when the read-ahead worker has
/// spooled it, without opening the store, so that a replay the worker keeps ahead of
/// waits on no round trip at all; `None` when the spool does not hold it.
pub fn wal_fetch_spooled(
    file: &str,
    dest: &Path,
    launcher: &Launcher,
) -> Result<Option<Fetched>, FetchError> {
    let Some(spool) = Spool::holding(dest, file) else {
        return Ok(None);
    };
    let Ok(WalFileName::Segment { tli, segno }) = WalFileName::parse(file, spool.segment_size())
    else {
        return Ok(None);
    };
    let request = SpooledRequest::new(spool, file, dest, (tli, segno))?;
    if !request.serve()? {
        return Ok(None);
    }
    tracing::debug!(file, "served from the prefetch spool");
    ahead::ensure_running(&request.spool, launcher);
    Ok(Some(Fetched::Found))
}

/// A request for one segment, as the spool serves it.
struct SpooledRequest<'a> {
    spool: Spool,
    file: &'a str,
    dest: &'a Path,
    /// The segment after it: the one the worker should spool first once it is served.
    next: Option<String>,
}

impl<'a> SpooledRequest<'a> {
    /// Prepares `spool` for a request for segment `segno` of `tli` (`file`), dropping what
    /// replay has passed.
    fn new(
        spool: Spool,
        file: &'a str,
        dest: &'a Path,
        (tli, segno): (TimelineId, SegmentNo),
    ) -> Result<SpooledRequest<'a>, FetchError> {
        spool
            .prepare(segno)
            .map_err(|err| spool_error(&spool, err))?;
        let next = segno.as_u64().checked_add(1).map(|next| {
            logship_protocol::pg::xlog_file_name(tli, SegmentNo::new(next), spool.segment_size())
        });
        Ok(SpooledRequest {
            spool,
            file,
            dest,
            next,
        })
    }

    /// Moves the file from the spool to `dest`; `false` when it is not spooled.
    fn serve(&self) -> Result<bool, FetchError> {
        if !self.spool.contains(self.file) {
            return Ok(false);
        }
        // The next segment comes into the worker's sights before the file leaves the
        // spool, so that the worker never sees it gone while it is still the one asked for.
        if let Some(next) = &self.next {
            want(&self.spool, next);
        }
        self.spool
            .take(self.file, self.dest)
            .map_err(|err| spool_error(&self.spool, err))
    }

    /// Whether the worker marked the file as one it cannot spool, or is gone.
    fn worker_gave_up(&self, worker: &mut ahead::Started) -> bool {
        self.spool.is_absent(self.file) || !worker.running(&self.spool)
    }
}

fn spool_error(spool: &Spool, err: std::io::Error) -> FetchError {
    FetchError::Spool {
        path: spool.dir().display().to_string(),
        reason: err.to_string(),
    }
}

/// Runs the read-ahead worker of the spool beside `dest` (see [`ahead`]) until it has
/// nothing left to do.
pub async fn read_ahead(
    store: Arc<dyn Store>,
    source: SourceName,
    dest: &Path,
    prefetch: usize,
) -> Result<(), FetchError> {
    let seg = source_segment_size(store.as_ref(), &source).await?;
    let dest = std::path::absolute(dest).map_err(|err| FetchError::Spool {
        path: dest.display().to_string(),
        reason: err.to_string(),
    })?;
    ahead::run(store, source, Spool::beside(&dest, seg), prefetch).await;
    Ok(())
}

/// Records `name` as the first segment the spool should hold. A failure only costs the
/// speed-up, so it is logged, not returned.
fn want(spool: &Spool, name: &str) {
    if let Err(err) = spool.set_want(name) {
        tracing::debug!(%err, "cannot record the next segment in the spool");
    }
}

/// The segment size from the source's identity.
async fn source_segment_size(
    store: &dyn Store,
    source: &SourceName,
) -> Result<WalSegSize, FetchError> {
    let identity = retrying(|| async {
        read_identity(store, source).await.map_err(|err| match err {
            IdentityError::Store(err) => Retry::Store(err),
            other => Retry::Other(FetchError::from(other)),
        })
    })
    .await?;
    match identity {
        Some(SourceIdentity::Postgres { wal_seg_size, .. }) => Ok(wal_seg_size),
        Some(_) => Err(FetchError::NotPostgres {
            source_name: source.to_string(),
        }),
        None => Err(FetchError::NoArchive {
            store: store.url().to_owned(),
            source_name: source.to_string(),
        }),
    }
}

/// Fetches a parsed WAL file name into `dest`.
async fn fetch_named(
    store: &dyn Store,
    source: &SourceName,
    seg: WalSegSize,
    name: WalFileName,
    dest: &Path,
) -> Result<Fetched, FetchError> {
    let content = match name {
        WalFileName::History(tli) => {
            read_object(store, &WalKey::History(tli).format(source, seg)).await?
        }
        WalFileName::Segment { tli, segno } => {
            read_segment_again_if_merged(store, source, seg, tli, segno).await?
        }
    };
    match content {
        Some(bytes) => {
            write_dest(dest, &bytes).map_err(|err| FetchError::Dest {
                path: dest.display().to_string(),
                reason: err.to_string(),
            })?;
            Ok(Fetched::Found)
        }
        None => Ok(Fetched::NotInArchive),
    }
}

/// [`read_segment`], read again when a piece was merged away while it was being read (the
/// archiver still runs); the merged object is there by the next listing.
async fn read_segment_again_if_merged(
    store: &dyn Store,
    source: &SourceName,
    seg: WalSegSize,
    tli: TimelineId,
    segno: SegmentNo,
) -> Result<Option<Vec<u8>>, FetchError> {
    let mut attempt = 1;
    loop {
        match read_segment(store, source, seg, tli, segno).await {
            Err(FetchError::Vanished { key }) if attempt < MERGE_ATTEMPTS => {
                tracing::debug!(
                    key,
                    attempt,
                    "a piece was merged while it was read; reading again"
                );
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A whole segment: the complete object, or its pieces padded with zeros.
pub async fn read_segment(
    store: &dyn Store,
    source: &SourceName,
    seg: WalSegSize,
    tli: TimelineId,
    segno: SegmentNo,
) -> Result<Option<Vec<u8>>, FetchError> {
    let key = WalKey::Segment { tli, segno }.format(source, seg);
    if let Some(content) = read_object(store, &key).await? {
        return Ok(Some(content));
    }
    let mut pieces = Vec::new();
    let prefix = format!("{key}.partial.");
    let listed = retrying(|| async {
        store
            .list(&prefix)
            .await
            .map_err(Retry::<FetchError>::Store)
    });
    for object in listed.await? {
        if let Ok((_, WalKey::Piece { start, end, .. })) = WalKey::parse(&object.key, seg)
            && let Some(range) = PieceRange::new(start, end)
        {
            pieces.push(range);
        }
    }
    let chain = logship_protocol::archive::pieces::chain(&pieces);
    if chain.is_empty() {
        return Ok(None);
    }
    let size = usize::try_from(seg.bytes()).unwrap_or(usize::MAX);
    let mut segment = Vec::with_capacity(size);
    for range in chain {
        let piece_key = WalKey::Piece {
            tli,
            segno,
            start: range.start(),
            end: range.end(),
        }
        .format(source, seg);
        // A piece that vanished between list and get was merged meanwhile: a
        // retry sees the merged one.
        let content =
            read_object(store, &piece_key)
                .await?
                .ok_or_else(|| FetchError::Vanished {
                    key: piece_key.clone(),
                })?;
        if content.len() != range.len() as usize {
            let reason = format!(
                "holds {} bytes but its key says {}",
                content.len(),
                range.len()
            );
            return Err(ReadError::damaged(&piece_key, reason, false).into());
        }
        segment.extend_from_slice(&content);
    }
    segment.resize(size, 0);
    Ok(Some(segment))
}
