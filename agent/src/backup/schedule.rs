//! The backups `logship run` takes by itself: one as soon as streaming has started when the
//! source has none, then one every `base_backup_interval` after the newest one's end. A failed
//! backup is logged and tried again later; it never stops the daemon.
//!
//! The schedule is the same for every database kind; a [`ScheduledBackup`] takes the backup
//! and reads the end time out of the kind's `meta`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use logship_protocol::archive::backup::BackupId;
use logship_protocol::archive::key::{self, ArchiveKey, SourceName};
use logship_protocol::archive::object;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::metrics::SourceMetrics;
use crate::store::{Store, StoreError};

/// The longest wait before trying again after a failure.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// How often to check whether streaming has started.
const STREAMING_POLL: Duration = Duration::from_millis(200);

/// What a finished backup reports to the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// When the backup's data was complete.
    pub end_time: Timestamp,
    /// The backup's size before compression.
    pub raw_bytes: u64,
}

/// Why a scheduled backup failed.
#[derive(Debug)]
pub struct Failed {
    /// The error, one line.
    pub message: String,
    /// Whether the backup's own check failed, rather than getting it.
    pub verification: bool,
}

/// One database kind's way of taking a backup and of reading a stored one's end time.
#[async_trait::async_trait]
pub trait ScheduledBackup: Send + Sync {
    /// Takes one backup now.
    async fn take(&self) -> Result<Taken, Failed>;

    /// The end time recorded in the content of a `meta` object of this kind.
    fn end_time(&self, meta: &[u8]) -> Result<Timestamp, String>;
}

/// One source's backup schedule.
pub struct BackupSchedule {
    /// Where backups go.
    pub store: Arc<dyn Store>,
    /// The source to back up.
    pub source: SourceName,
    /// How each backup is taken.
    pub backup: Box<dyn ScheduledBackup>,
    /// The time from one backup's end to the next backup.
    pub interval: Duration,
    /// The source's metrics, which tell when streaming has started and record backups.
    pub metrics: SourceMetrics,
}

impl BackupSchedule {
    /// Takes backups on schedule until `shutdown` fires; a backup running then is abandoned.
    pub async fn run(self, shutdown: CancellationToken) {
        let span = tracing::info_span!("backup_schedule", source = %self.source);
        self.run_inner(shutdown).instrument(span).await;
    }

    async fn run_inner(self, shutdown: CancellationToken) {
        // The WAL or binlog a backup needs only reaches the store once streaming runs.
        while !self.metrics.snapshot().connected {
            if sleep_or_cancel(STREAMING_POLL, &shutdown).await {
                return;
            }
        }
        let retry = self.interval.min(MAX_RETRY);
        loop {
            let newest = newest_backup_end(self.store.as_ref(), &self.source, &*self.backup);
            let due_in = match newest.await {
                Ok(Some(end)) => due_in(end, self.interval, Timestamp::now()),
                Ok(None) => Duration::ZERO,
                Err(err) => {
                    tracing::warn!(%err, retry_in = ?retry, "cannot list the source's backups");
                    if sleep_or_cancel(retry, &shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            if !due_in.is_zero() {
                tracing::debug!(next_in = ?due_in, "next base backup scheduled");
                // Look again when it is due: a backup taken meanwhile moves the schedule.
                if sleep_or_cancel(due_in, &shutdown).await {
                    return;
                }
                continue;
            }
            let started = Instant::now();
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                outcome = self.backup.take() => outcome,
            };
            match outcome {
                Ok(taken) => {
                    self.metrics.backup_succeeded(
                        taken.end_time,
                        started.elapsed(),
                        taken.raw_bytes,
                    );
                }
                Err(failed) => {
                    if failed.verification {
                        self.metrics.backup_verified(false);
                    }
                    let err = failed.message;
                    tracing::warn!(%err, retry_in = ?retry, "scheduled base backup failed");
                    if sleep_or_cancel(retry, &shutdown).await {
                        return;
                    }
                }
            }
        }
    }
}

/// How long until the next backup is due, `interval` after the newest one ended.
fn due_in(newest_end: Timestamp, interval: Duration, now: Timestamp) -> Duration {
    // A backup that ended "in the future" (the clock moved back) counts as just ended.
    let elapsed = Duration::try_from(now.duration_since(newest_end)).unwrap_or(Duration::ZERO);
    interval.saturating_sub(elapsed)
}

/// The end time of the source's newest complete backup; metas that don't decode are skipped.
async fn newest_backup_end(
    store: &dyn Store,
    source: &SourceName,
    kind: &dyn ScheduledBackup,
) -> Result<Option<Timestamp>, StoreError> {
    let mut ids: Vec<BackupId> = Vec::new();
    for listed in store.list(&key::backups_prefix(source)).await? {
        // Backup keys do not depend on the segment size.
        if let Ok((_, ArchiveKey::BackupMeta { id })) = ArchiveKey::parse(&listed.key) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    for id in ids.into_iter().rev() {
        let meta_key = ArchiveKey::BackupMeta { id }.format(source);
        let stored = match store.get(&meta_key).await {
            Ok(stored) => stored,
            // Pruned since the listing.
            Err(err) if err.is_not_found() => continue,
            Err(err) => return Err(err),
        };
        let end = object::decode(&stored)
            .map_err(|err| err.to_string())
            .and_then(|content| kind.end_time(&content));
        match end {
            Ok(end) => return Ok(Some(end)),
            Err(reason) => {
                tracing::warn!(key = %meta_key, %reason, "skipping an unreadable backup meta");
            }
        }
    }
    Ok(None)
}

/// Sleeps for `duration`; true when `shutdown` fired first.
async fn sleep_or_cancel(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn next_backup_is_due_an_interval_after_the_newest_end() {
        let end = ts("2026-11-21T10:00:00Z");
        let day = Duration::from_secs(86400);
        assert_eq!(
            due_in(end, day, ts("2026-11-21T16:00:00Z")),
            Duration::from_secs(18 * 3600)
        );
        assert_eq!(due_in(end, day, ts("2026-11-23T00:00:00Z")), Duration::ZERO);
        assert_eq!(due_in(end, day, ts("2026-11-21T09:00:00Z")), day);
    }
}
