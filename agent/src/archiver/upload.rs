//! Uploads in flight for one source: each retried until it is durable, the compressed
//! bytes they hold counted, and their completions folded into the durable position.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::task::JoinSet;

use super::durable::{DurableTracker, UploadId};
use crate::metrics::SourceMetrics;
use crate::store::Store;

const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// A finished upload: its object is durable.
pub struct Finished<K, P> {
    /// What the archiver said the object is, when it started the upload.
    pub kind: K,
    /// The new durable position, if this completion moved it.
    pub durable: Option<P>,
}

/// The uploads of one source's archiver. `K` says what an object means to the archiver;
/// `P` is the source's position type.
pub struct UploadQueue<K, P> {
    store: Arc<dyn Store>,
    metrics: SourceMetrics,
    tracker: DurableTracker<P>,
    uploads: JoinSet<Done<K>>,
    in_flight_bytes: usize,
}

struct Done<K> {
    id: UploadId,
    stored_len: usize,
    kind: K,
}

impl<K: Send + 'static, P: Ord + Copy> UploadQueue<K, P> {
    /// A queue whose archive is durable up to `durable`.
    pub fn new(store: Arc<dyn Store>, metrics: SourceMetrics, durable: P) -> UploadQueue<K, P> {
        UploadQueue {
            store,
            metrics,
            tracker: DurableTracker::new(durable),
            uploads: JoinSet::new(),
            in_flight_bytes: 0,
        }
    }

    /// The store uploads go to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The position up to which everything is durable.
    pub fn durable(&self) -> P {
        self.tracker.durable()
    }

    /// True while uploads are still running.
    pub fn is_busy(&self) -> bool {
        !self.uploads.is_empty()
    }

    /// Compressed bytes of the uploads still running.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes
    }

    /// Starts putting `stored` (the framed object, `raw_len` bytes of content) under `key`.
    /// Once it and every upload started before it are durable, the archive is durable up
    /// to `end`.
    pub fn start(&mut self, key: String, stored: Vec<u8>, raw_len: u64, end: P, kind: K) {
        let id = self.tracker.register(end);
        self.in_flight_bytes += stored.len();
        let (store, metrics) = (self.store.clone(), self.metrics.clone());
        self.uploads.spawn(async move {
            let stored = Bytes::from(stored);
            put_until_durable(store.as_ref(), &metrics, &key, stored.clone(), raw_len).await;
            Done {
                id,
                stored_len: stored.len(),
                kind,
            }
        });
    }

    /// Waits for one upload to finish. Never returns while nothing is in flight (for use
    /// in `select!`); cancel-safe.
    pub async fn next_finished(&mut self) -> Finished<K, P> {
        loop {
            let Some(joined) = self.uploads.join_next().await else {
                return std::future::pending().await;
            };
            match joined {
                Ok(done) => {
                    self.in_flight_bytes = self.in_flight_bytes.saturating_sub(done.stored_len);
                    let durable = self.tracker.complete(done.id);
                    return Finished {
                        kind: done.kind,
                        durable,
                    };
                }
                // An upload task only ends by finishing: it retries store errors forever.
                // Its position stays pending, so nothing past it is ever acknowledged.
                Err(err) => tracing::error!(%err, "upload task failed"),
            }
        }
    }
}

/// Puts the object, retrying with capped exponential backoff until the store accepts it.
/// Never gives up: the durable position simply waits, and the server keeps the data
/// meanwhile (the replication slot, or the binlog).
async fn put_until_durable(
    store: &dyn Store,
    metrics: &SourceMetrics,
    key: &str,
    stored: Bytes,
    raw_len: u64,
) {
    let mut delay = FIRST_RETRY;
    loop {
        let started = Instant::now();
        match store.put(key, stored.clone()).await {
            Ok(()) => {
                metrics.upload_succeeded(started.elapsed(), raw_len, stored.len());
                return;
            }
            Err(err) => {
                metrics.upload_failed();
                tracing::warn!(%key, %err, retry_in = ?delay, "upload failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }
}
