//! One object upload, retried until it is durable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use logship_protocol::archive::pieces::PiecePlan;
use logship_protocol::pg::{SegmentNo, TimelineId};

use crate::metrics::SourceMetrics;
use crate::store::Store;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// What an upload makes durable.
pub enum UploadKind {
    /// A complete segment's object.
    Segment { tli: TimelineId, segno: SegmentNo },
    /// A piece of the segment in progress.
    Piece {
        tli: TimelineId,
        segno: SegmentNo,
        plan: PiecePlan,
    },
}

/// An object to put, with what it means for the archive.
pub struct Upload {
    pub id: u64,
    pub key: String,
    pub stored: Bytes,
    pub raw_len: u64,
    pub kind: UploadKind,
}

/// A finished upload: its object is durable.
pub struct UploadDone {
    pub id: u64,
    pub stored_len: usize,
    pub kind: UploadKind,
}

impl Upload {
    /// Puts the object, retrying with capped exponential backoff until the store
    /// accepts it. Never gives up: the durable position simply waits, and the
    /// server's slot keeps the WAL meanwhile.
    pub async fn run(self, store: Arc<dyn Store>, metrics: SourceMetrics) -> UploadDone {
        let mut delay = FIRST_RETRY;
        loop {
            let started = Instant::now();
            match store.put(&self.key, self.stored.clone()).await {
                Ok(()) => {
                    metrics.upload_succeeded(started.elapsed(), self.raw_len, self.stored.len());
                    return UploadDone {
                        id: self.id,
                        stored_len: self.stored.len(),
                        kind: self.kind,
                    };
                }
                Err(err) => {
                    metrics.upload_failed();
                    tracing::warn!(key = %self.key, %err, retry_in = ?delay, "upload failed");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY);
                }
            }
        }
    }
}
