//! Prometheus metrics (names fixed by DESIGN.md §5) and the HTTP endpoints that serve them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use jiff::Timestamp;
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The latest values of one source, for `/readyz`, logs and the quickstart.
///
/// Positions are byte offsets in the source's own stream, comparable with each other:
/// the LSN for PostgreSQL, the global byte offset for MySQL/MariaDB (see
/// [`crate::mysql::offsets`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceSnapshot {
    pub connected: bool,
    pub received: u64,
    pub durable: u64,
    pub server: u64,
    pub server_time: Option<Timestamp>,
    pub newest_durable_commit: Option<Timestamp>,
}

impl SourceSnapshot {
    /// Bytes the server has written that are not durable in the store yet.
    pub fn lag_bytes(&self) -> u64 {
        self.server.saturating_sub(self.durable)
    }

    /// The server's time minus the newest durable commit's time; 0 when nothing is behind.
    pub fn lag_seconds(&self) -> f64 {
        if self.lag_bytes() == 0 {
            return 0.0;
        }
        match (self.server_time, self.newest_durable_commit) {
            (Some(now), Some(commit)) => now.duration_since(commit).as_secs_f64().max(0.0),
            _ => 0.0,
        }
    }
}

/// Metric handles for one source, labelled `source=<name>`. Cheap to clone.
#[derive(Clone)]
pub struct SourceMetrics {
    inner: Arc<Handles>,
}

struct Handles {
    received: Gauge,
    durable: Gauge,
    server: Gauge,
    lag_bytes: Gauge,
    lag_seconds: Gauge,
    upload_duration: Histogram,
    uploads: Counter,
    upload_errors: Counter,
    reconnects: Counter,
    shipped_raw: Counter,
    shipped_stored: Counter,
    backup_last_success: Gauge,
    backup_duration: Gauge,
    backup_size: Gauge,
    backup_verification: Gauge,
    snapshot: Mutex<SourceSnapshot>,
}

impl SourceMetrics {
    /// Handles for `source`; no-ops until a recorder is installed.
    pub fn new(source: &str) -> SourceMetrics {
        let labels = [("source", source.to_owned())];
        let shipped = |kind: &'static str| metrics::counter!("logship_shipped_bytes_total", "source" => source.to_owned(), "kind" => kind);
        SourceMetrics {
            inner: Arc::new(Handles {
                received: metrics::gauge!("logship_received_position", &labels),
                durable: metrics::gauge!("logship_durable_position", &labels),
                server: metrics::gauge!("logship_server_position", &labels),
                lag_bytes: metrics::gauge!("logship_lag_bytes", &labels),
                lag_seconds: metrics::gauge!("logship_lag_seconds", &labels),
                upload_duration: metrics::histogram!("logship_upload_duration_seconds", &labels),
                uploads: metrics::counter!("logship_uploads_total", &labels),
                upload_errors: metrics::counter!("logship_upload_errors_total", &labels),
                reconnects: metrics::counter!("logship_reconnects_total", &labels),
                shipped_raw: shipped("raw"),
                shipped_stored: shipped("stored"),
                backup_last_success: metrics::gauge!(
                    "logship_backup_last_success_timestamp_seconds",
                    &labels
                ),
                backup_duration: metrics::gauge!("logship_backup_duration_seconds", &labels),
                backup_size: metrics::gauge!("logship_backup_size_bytes", &labels),
                backup_verification: metrics::gauge!(
                    "logship_backup_verification_success",
                    &labels
                ),
                snapshot: Mutex::new(SourceSnapshot::default()),
            }),
        }
    }

    /// The latest values.
    pub fn snapshot(&self) -> SourceSnapshot {
        *self.lock()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SourceSnapshot> {
        // A poisoned lock only means another thread panicked mid-update of plain numbers.
        self.inner
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut SourceSnapshot)) {
        let snapshot = {
            let mut guard = self.lock();
            change(&mut guard);
            *guard
        };
        self.inner.received.set(snapshot.received as f64);
        self.inner.durable.set(snapshot.durable as f64);
        self.inner.server.set(snapshot.server as f64);
        self.inner.lag_bytes.set(snapshot.lag_bytes() as f64);
        self.inner.lag_seconds.set(snapshot.lag_seconds());
    }

    /// Whether the replication connection is up and streaming.
    pub fn set_connected(&self, connected: bool) {
        self.update(|s| s.connected = connected);
    }

    /// End of what was received.
    pub fn set_received(&self, position: u64) {
        self.update(|s| s.received = s.received.max(position));
    }

    /// End of what is durable in the store.
    pub fn set_durable(&self, position: u64) {
        self.update(|s| s.durable = s.durable.max(position));
    }

    /// The server's write position, and its clock when known (`None` keeps the last).
    pub fn set_server(&self, position: u64, time: Option<Timestamp>) {
        self.update(|s| {
            s.server = s.server.max(position);
            s.server_time = time.or(s.server_time);
        });
    }

    /// Received up to `position`, which the server had written at `time`: one update for
    /// both, as a binlog source reports it for every event.
    pub fn set_received_from_server(&self, position: u64, time: Timestamp) {
        self.update(|s| {
            s.received = s.received.max(position);
            s.server = s.server.max(position);
            s.server_time = Some(time);
        });
    }

    /// The commit time of the newest transaction whose commit is durable.
    pub fn set_newest_durable_commit(&self, time: Timestamp) {
        self.update(|s| s.newest_durable_commit = Some(time));
    }

    /// One object became durable.
    pub fn upload_succeeded(&self, took: Duration, raw: u64, stored: usize) {
        self.inner.upload_duration.record(took.as_secs_f64());
        self.inner.uploads.increment(1);
        self.inner.shipped_raw.increment(raw);
        self.inner.shipped_stored.increment(stored as u64);
    }

    /// One upload attempt failed (it is retried).
    pub fn upload_failed(&self) {
        self.inner.upload_errors.increment(1);
    }

    /// The source reconnected after losing its connection.
    pub fn reconnected(&self) {
        self.inner.reconnects.increment(1);
    }

    /// A base backup became durable: when it ended, how long it took and its tar bytes.
    pub fn backup_succeeded(&self, end_time: jiff::Timestamp, took: Duration, raw_bytes: u64) {
        self.inner
            .backup_last_success
            .set(end_time.as_millisecond() as f64 / 1e3);
        self.inner.backup_duration.set(took.as_secs_f64());
        self.inner.backup_size.set(raw_bytes as f64);
        self.backup_verified(true);
    }

    /// Whether the newest backup passed its own check (a manifest whose checksum holds).
    pub fn backup_verified(&self, ok: bool) {
        self.inner
            .backup_verification
            .set(if ok { 1.0 } else { 0.0 });
    }
}

/// Installs the Prometheus recorder for this process.
pub fn install_recorder() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("logship_upload_duration_seconds".into()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        )?
        .install_recorder()?;
    Ok(handle)
}

/// Logs once, when every source streams, where the metrics are served: so that a source
/// that fails at its first connection fails in one line.
pub async fn announce_when_streaming(listen: SocketAddr, sources: Vec<SourceMetrics>) {
    while !sources.iter().all(|s| s.snapshot().connected) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tracing::info!(%listen, "every source is streaming; serving /metrics, /healthz and /readyz");
}

/// Serves `/metrics`, `/healthz` (the process is up) and `/readyz` (every source is streaming).
pub async fn serve(
    listen: SocketAddr,
    handle: PrometheusHandle,
    sources: Vec<SourceMetrics>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|err| {
        anyhow::anyhow!(
            "cannot listen for metrics on {listen}: {err} (choose another address: listen in the configuration's [metrics] table, or LOGSHIP_METRICS_LISTEN)"
        )
    })?;
    tracing::debug!(%listen, "listening for /metrics, /healthz and /readyz");
    let app = Router::new()
        .route("/metrics", get(move || std::future::ready(handle.render())))
        .route("/healthz", get(|| std::future::ready("ok\n")))
        .route(
            "/readyz",
            get(move || {
                let ready = sources.iter().all(|s| s.snapshot().connected);
                std::future::ready(if ready {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not streaming\n")
                })
            }),
        );
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn lag_is_bytes_and_seconds_behind_the_server_and_zero_when_idle() {
        let mut s = SourceSnapshot {
            connected: true,
            received: 1500,
            durable: 1000,
            server: 1700,
            server_time: Some(ts("2026-11-21T10:15:03.25Z")),
            newest_durable_commit: Some(ts("2026-11-21T10:15:01Z")),
        };
        assert_eq!(s.lag_bytes(), 700);
        assert_eq!(s.lag_seconds(), 2.25);
        s.durable = 1700;
        assert_eq!((s.lag_bytes(), s.lag_seconds()), (0, 0.0));
        // A clock behind the commit time is no negative lag.
        s.durable = 1000;
        s.server_time = Some(ts("2026-11-21T10:15:00Z"));
        assert_eq!(s.lag_seconds(), 0.0);
    }
}
