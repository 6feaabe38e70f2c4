//! A PostgreSQL source: streams WAL like a physical standby and acknowledges
//! only what the archiver has made durable.
//!
//! The first connection checks everything a user can get wrong (credentials,
//! privileges, server settings, the store, the archive's identity) and fails
//! with one line. Once streaming, every failure is ridden out: reconnect with
//! capped exponential backoff, never give up, resume from what is in memory.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use logship_protocol::archive::identity::SourceIdentity;
use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::object::{self, Codec};
use logship_protocol::pg::key::WalKey;
use logship_protocol::pg::replication::{PgTimestamp, StandbyStatusUpdate};
use logship_protocol::pg::timeline::TimelineHistory;
use logship_protocol::pg::{Lsn, TimelineId, WalSegSize};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{PgSourceConfig, SourceOptionsError};
use crate::identity::{IdentityError, record_identity, verify_identity};
use crate::metrics::SourceMetrics;
use crate::pg::archiver::{OutOfOrder, ResumeFrom, WalArchiver};
use crate::pg::catalog::WalCatalog;
use crate::pg::conn::{ConnectOptions, PgError, ReplicationConnection, ReplicationEvent, SlotInfo};
use crate::store::{Store, StoreError};
use crate::timefmt::from_pg;

const FIRST_RECONNECT: Duration = Duration::from_millis(500);
const MAX_RECONNECT: Duration = Duration::from_secs(30);
/// How often a status update goes out even when nothing changed, well inside
/// the server's default `wal_sender_timeout` of 60 s.
const STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// At shutdown, how long to keep reading what the server already sent…
const SHUTDOWN_READ: Duration = Duration::from_secs(1);
/// …stopping as soon as the stream is quiet this long.
const QUIET: Duration = Duration::from_millis(50);

/// Why a PostgreSQL source stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    OutOfOrder(#[from] OutOfOrder),
    #[error(
        "the server's timeline {server} does not descend from archived timeline {archived} (this is a different server history: give it its own source name)"
    )]
    ForeignTimeline {
        server: TimelineId,
        archived: TimelineId,
    },
    #[error(
        "cannot read the server's history file for timeline {tli}: {reason} (check the timeline's .history file in the server's pg_wal)"
    )]
    BadHistory { tli: TimelineId, reason: String },
    #[error(transparent)]
    Options(#[from] SourceOptionsError),
    #[error("the server ended streaming at {at} (it may be shutting down)")]
    EndOfStream { at: Lsn },
}

impl SourceError {
    /// Errors a reconnect cannot fix once streaming has started.
    fn is_permanent(&self) -> bool {
        matches!(
            self,
            SourceError::Identity(IdentityError::Mismatch { .. })
                | SourceError::ForeignTimeline { .. }
        )
    }
}

/// One PostgreSQL source, configured and ready to run.
pub struct PostgresSource {
    name: SourceName,
    config: PgSourceConfig,
    options: ConnectOptions,
    store: Arc<dyn Store>,
    metrics: SourceMetrics,
}

/// A connection that has been checked and is ready to stream.
struct Session {
    conn: ReplicationConnection,
    server_tli: TimelineId,
    seg: WalSegSize,
    slot: SlotInfo,
}

impl PostgresSource {
    /// Prepares a source from its configuration; reads `password_file` if set.
    pub fn new(
        config: PgSourceConfig,
        store: Arc<dyn Store>,
        metrics: SourceMetrics,
    ) -> Result<PostgresSource, SourceError> {
        let options = config.connect_options(&config.application_name)?;
        Ok(PostgresSource {
            name: config.common.name.clone(),
            config,
            options,
            store,
            metrics,
        })
    }

    /// Streams until `shutdown` fires, then makes everything received durable.
    /// Fails fast on the first connection; after that, reconnects forever.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), SourceError> {
        let span = tracing::info_span!("source", source = %self.name, slot = %self.config.slot);
        self.run_inner(shutdown).instrument(span).await
    }

    async fn run_inner(self, shutdown: CancellationToken) -> Result<(), SourceError> {
        let mut session = self.connect().await?;
        let mut archiver = self.open_archiver(&session).await?;
        let mut delay = FIRST_RECONNECT;
        loop {
            let attempt = match self.prepare(&mut session, &mut archiver).await {
                Ok(()) => self.stream(&mut session, &mut archiver, &shutdown).await,
                Err(err) => Err(err),
            };
            self.metrics.set_connected(false);
            // Whatever arrived before the connection broke is shipped while we reconnect.
            archiver.flush();
            match attempt {
                Ok(()) => return Ok(()),
                Err(err) if err.is_permanent() => {
                    archiver.drain(false).await;
                    return Err(err);
                }
                Err(err) => tracing::warn!(%err, "replication interrupted; reconnecting"),
            }
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        archiver.drain(false).await;
                        return Ok(());
                    }
                    _ = tokio::time::sleep(delay) => {}
                    // Uploads keep finishing while we are disconnected.
                    _ = archiver.wait_upload() => continue,
                }
                delay = (delay * 2).min(MAX_RECONNECT);
                self.metrics.reconnected();
                match self.connect().await {
                    Ok(next) => {
                        session = next;
                        delay = FIRST_RECONNECT;
                        break;
                    }
                    Err(err) if err.is_permanent() => return Err(err),
                    Err(err) => tracing::warn!(%err, retry_in = ?delay, "reconnect failed"),
                }
            }
        }
    }

    /// Connects, identifies the server, claims the archive and makes sure the slot exists.
    async fn connect(&self) -> Result<Session, SourceError> {
        let mut conn = ReplicationConnection::connect(&self.options).await?;
        let system = conn.identify_system().await?;
        let seg = conn.wal_segment_size().await?;
        let identity = SourceIdentity::Postgres {
            system_id: system.system_id,
            wal_seg_size: seg,
        };
        // Check everything before writing anything, on the server or in the store.
        let recorded = verify_identity(self.store.as_ref(), &self.name, &identity).await?;
        if !recorded {
            self.store.check_writable().await?;
        }
        let slot = match conn.read_replication_slot(&self.config.slot).await? {
            Some(slot) => slot,
            None => {
                conn.create_physical_slot(&self.config.slot).await?;
                tracing::info!(slot = %self.config.slot, "created physical replication slot");
                conn.read_replication_slot(&self.config.slot)
                    .await?
                    .unwrap_or_default()
            }
        };
        if !recorded {
            record_identity(self.store.as_ref(), &self.name, &identity).await?;
        }
        Ok(Session {
            conn,
            server_tli: system.timeline,
            seg,
            slot,
        })
    }

    /// An archiver that continues the stored archive, or starts at the slot.
    async fn open_archiver(&self, session: &Session) -> Result<WalArchiver, SourceError> {
        let catalog = WalCatalog::load(self.store.as_ref(), &self.name, session.seg).await?;
        let resume = match catalog.newest_end() {
            Some(end) => {
                tracing::info!(tli = %end.tli, end = %end.end, "resuming after the archived WAL");
                ResumeFrom::Archive(end)
            }
            None => {
                let tli = session.slot.restart_tli.unwrap_or(session.server_tli);
                let start = session.slot.restart_lsn.unwrap_or(Lsn::INVALID);
                tracing::info!(%tli, %start, "empty archive: starting at the slot's restart position");
                ResumeFrom::Empty { tli, start }
            }
        };
        Ok(WalArchiver::new(
            self.store.clone(),
            self.name.clone(),
            session.seg,
            self.metrics.clone(),
            resume,
        ))
    }

    /// Moves the archiver onto the server's timeline history and starts streaming.
    async fn prepare(
        &self,
        session: &mut Session,
        archiver: &mut WalArchiver,
    ) -> Result<(), SourceError> {
        if archiver.tli() != session.server_tli {
            self.follow_history(session, archiver).await?;
        }
        self.archive_history(&mut session.conn, archiver.tli(), session.seg)
            .await?;
        tracing::info!(tli = %archiver.tli(), start = %archiver.received(), "starting replication");
        session
            .conn
            .start_replication(&self.config.slot, archiver.received(), archiver.tli())
            .await?;
        self.metrics.set_connected(true);
        Ok(())
    }

    /// When the archive is on an older timeline than the server: if the archive
    /// already holds all of that timeline, continue on the next one.
    async fn follow_history(
        &self,
        session: &mut Session,
        archiver: &mut WalArchiver,
    ) -> Result<(), SourceError> {
        let archived = archiver.tli();
        let foreign = SourceError::ForeignTimeline {
            server: session.server_tli,
            archived,
        };
        if archived > session.server_tli {
            return Err(foreign);
        }
        let (_, content) = session.conn.timeline_history(session.server_tli).await?;
        let history = TimelineHistory::parse(session.server_tli, &content).map_err(|e| {
            SourceError::BadHistory {
                tli: session.server_tli,
                reason: e.to_string(),
            }
        })?;
        let Some(switchpoint) = history.switchpoint(archived) else {
            return Err(foreign);
        };
        if archiver.durable() >= switchpoint {
            let next = history.timeline_at(switchpoint);
            archiver.drain(true).await;
            archiver.switch_timeline(next, switchpoint);
        }
        Ok(())
    }

    /// Archives the `.history` file of `tli` before any of its WAL (rewriting is idempotent).
    async fn archive_history(
        &self,
        conn: &mut ReplicationConnection,
        tli: TimelineId,
        seg: WalSegSize,
    ) -> Result<(), SourceError> {
        if tli == TimelineId::FIRST {
            return Ok(());
        }
        let (_, content) = conn.timeline_history(tli).await?;
        let key = WalKey::History(tli).format(&self.name, seg);
        self.store
            .put(&key, object::encode(&content, Codec::None).into())
            .await?;
        tracing::info!(%tli, "archived timeline history");
        Ok(())
    }

    /// The streaming loop. Returns `Ok` only after a shutdown made everything durable.
    async fn stream(
        &self,
        session: &mut Session,
        archiver: &mut WalArchiver,
        shutdown: &CancellationToken,
    ) -> Result<(), SourceError> {
        let flush_every_batch =
            self.config.synchronous || self.config.common.flush_interval.is_zero();
        let period = self
            .config
            .common
            .flush_interval
            .max(Duration::from_millis(1));
        let mut flush_tick = tokio::time::interval_at(Instant::now() + period, period);
        flush_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut status_tick = tokio::time::interval(STATUS_INTERVAL);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    self.read_what_was_sent(session, archiver).await?;
                    archiver.drain(false).await;
                    send_status(&mut session.conn, archiver, false).await?;
                    tracing::info!(durable = %archiver.durable(), "everything received is durable; stopping");
                    return Ok(());
                }
                advanced = archiver.wait_upload() => {
                    if advanced {
                        send_status(&mut session.conn, archiver, false).await?;
                    }
                }
                event = session.conn.next_event() => {
                    let mut next = Some(event?);
                    while let Some(event) = next {
                        self.handle(event, session, archiver).await?;
                        next = session.conn.try_next_buffered()?;
                    }
                    if flush_every_batch {
                        archiver.flush();
                    }
                }
                _ = flush_tick.tick(), if !flush_every_batch => archiver.flush(),
                _ = status_tick.tick() => send_status(&mut session.conn, archiver, false).await?,
            }
        }
    }

    /// Reads the WAL the server has already sent (it may sit in the socket's
    /// buffer), until the stream goes quiet or [`SHUTDOWN_READ`] runs out, so that
    /// a stop archives everything the server handed over.
    async fn read_what_was_sent(
        &self,
        session: &mut Session,
        archiver: &mut WalArchiver,
    ) -> Result<(), SourceError> {
        let deadline = Instant::now() + SHUTDOWN_READ;
        while Instant::now() < deadline {
            match tokio::time::timeout(QUIET, session.conn.next_event()).await {
                Ok(event) => self.handle(event?, session, archiver).await?,
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Handles one event. At the end of a timeline, streaming restarts on the next one.
    async fn handle(
        &self,
        event: ReplicationEvent,
        session: &mut Session,
        archiver: &mut WalArchiver,
    ) -> Result<(), SourceError> {
        match event {
            ReplicationEvent::XLogData(data) => {
                self.metrics
                    .set_server(data.wal_end.as_u64(), from_pg(data.server_time));
                archiver.append(data.wal_start, &data.data).await?;
                Ok(())
            }
            ReplicationEvent::Keepalive(keepalive) => {
                self.metrics
                    .set_server(keepalive.wal_end.as_u64(), from_pg(keepalive.server_time));
                if keepalive.reply_requested {
                    send_status(&mut session.conn, archiver, false).await?;
                }
                Ok(())
            }
            ReplicationEvent::EndOfTimeline {
                next_tli,
                next_start,
            } => {
                tracing::info!(ended = %archiver.tli(), at = %archiver.received(), %next_tli, %next_start, "timeline ended; following the server onto the next one");
                archiver.drain(true).await;
                archiver.switch_timeline(next_tli, next_start);
                session.server_tli = session.server_tli.max(next_tli);
                self.archive_history(&mut session.conn, next_tli, session.seg)
                    .await?;
                session
                    .conn
                    .start_replication(&self.config.slot, archiver.received(), next_tli)
                    .await?;
                Ok(())
            }
            ReplicationEvent::EndOfStream => Err(SourceError::EndOfStream {
                at: archiver.received(),
            }),
        }
    }
}

/// Reports positions: `write` = received, `flush` = durable, `apply` = invalid.
async fn send_status(
    conn: &mut ReplicationConnection,
    archiver: &WalArchiver,
    reply_requested: bool,
) -> Result<(), PgError> {
    let update = StandbyStatusUpdate {
        write: archiver.received().max(archiver.durable()),
        flush: archiver.durable(),
        apply: Lsn::INVALID,
        client_time: now(),
        reply_requested,
    };
    conn.send_status(&update).await
}

fn now() -> PgTimestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    PgTimestamp::from_unix_micros(micros)
}
