//! One MySQL/MariaDB source: connect as a replica, check the server, claim the archive,
//! and stream the binlog into the archiver until shutdown, reconnecting as needed.

use std::sync::Arc;
use std::time::Duration;

use logship_protocol::archive::SourceIdentity;
use logship_protocol::archive::key::SourceName;
use logship_protocol::mysql::BinlogPos;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{MysqlSourceConfig, PasswordFileError};
use crate::identity::{IdentityError, record_identity, verify_identity};
use crate::metrics::SourceMetrics;
use crate::mysql::archiver::{ArchiveError, BinlogArchiver, ResumeFrom};
use crate::mysql::catalog::BinlogCatalog;
use crate::mysql::conn::{
    ConnectOptions, DumpItem, DumpOptions, DumpStart, MysqlConnection, MysqlError, ServerInfo,
};
use crate::mysql::offsets::GlobalOffsets;
use crate::mysql::progress::BinlogProgress;
use crate::store::{Store, StoreError};

const FIRST_RECONNECT: Duration = Duration::from_millis(500);
const MAX_RECONNECT: Duration = Duration::from_secs(30);
/// How often the server sends a heartbeat on an idle binlog, so that a dead connection
/// is noticed.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// Why a MySQL source stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Mysql(#[from] MysqlError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    PasswordFile(#[from] PasswordFileError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(
        "the server reports server_uuid {uuid:?}, which is not a UUID (check the server's auto.cnf)"
    )]
    BadUuid { uuid: String },
    #[error(
        "the server no longer has binlog {needed}, which the archive needs next (archived up to {archived}; the server's oldest binlog is {oldest}): the binlog between them is lost; take a new base backup with `logship backup`, then move the source's archive aside to start it anew"
    )]
    Purged {
        needed: String,
        archived: BinlogPos,
        oldest: String,
    },
}

impl SourceError {
    /// Errors a reconnect cannot fix.
    fn is_permanent(&self) -> bool {
        match self {
            SourceError::Mysql(err) => err.is_config() || err.is_purged(),
            SourceError::Identity(IdentityError::Mismatch { .. })
            | SourceError::BadUuid { .. }
            | SourceError::Purged { .. }
            | SourceError::PasswordFile(_) => true,
            _ => false,
        }
    }
}

/// One MySQL/MariaDB source, configured and ready to run.
pub struct MysqlSource {
    config: MysqlSourceConfig,
    store: Arc<dyn Store>,
    metrics: SourceMetrics,
}

impl MysqlSource {
    /// Prepares a source from its configuration.
    pub fn new(
        config: MysqlSourceConfig,
        store: Arc<dyn Store>,
        metrics: SourceMetrics,
    ) -> MysqlSource {
        MysqlSource {
            config,
            store,
            metrics,
        }
    }

    fn name(&self) -> &SourceName {
        &self.config.common.name
    }

    /// Streams until `shutdown` fires, then makes everything received durable.
    /// Fails fast on the first connection; after that, reconnects until a permanent error.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), SourceError> {
        let span =
            tracing::info_span!("source", source = %self.name(), server_id = self.config.server_id);
        self.run_inner(shutdown).instrument(span).await
    }

    async fn run_inner(self, shutdown: CancellationToken) -> Result<(), SourceError> {
        let conn = self.connect().await?;
        let catalog = BinlogCatalog::load(self.store.as_ref(), self.name()).await?;
        let resume = resume_from(&catalog, conn.info());
        tracing::info!(start = %resume.dump_start(), "starting the binlog dump");
        let offsets =
            GlobalOffsets::from_archive(&catalog, resume.server(), resume.dump_start().file());
        let mut archiver = BinlogArchiver::new(
            self.store.clone(),
            self.name().clone(),
            BinlogProgress::new(self.metrics.clone(), offsets),
            &resume,
        );
        let mut conn = Some(conn);
        let mut delay = FIRST_RECONNECT;
        loop {
            let attempt = match conn.take() {
                Some(conn) => self.stream(conn, &mut archiver, &shutdown).await,
                None => Ok(false),
            };
            self.metrics.set_connected(false);
            // Whatever arrived before the connection broke is shipped while we reconnect.
            archiver.flush();
            match attempt {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(err) if err.is_permanent() => {
                    archiver.drain().await;
                    return Err(err);
                }
                Err(err) => tracing::warn!(%err, "replication interrupted; reconnecting"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    archiver.drain().await;
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
                    conn = Some(next);
                    delay = FIRST_RECONNECT;
                }
                Err(err) if err.is_permanent() => {
                    archiver.drain().await;
                    return Err(err);
                }
                Err(err) => tracing::warn!(%err, retry_in = ?delay, "reconnect failed"),
            }
        }
    }

    /// Connects, checks the server and claims the archive for it.
    async fn connect(&self) -> Result<MysqlConnection, SourceError> {
        let options =
            ConnectOptions::from_url(&self.config.common.url, self.config.common.file_password()?)?;
        let conn = MysqlConnection::connect(&options).await?;
        let info = conn.info();
        for warning in &info.warnings {
            tracing::warn!("{warning}");
        }
        let identity = identity_of(info)?;
        // Check everything before writing anything to the store.
        let recorded = verify_identity(self.store.as_ref(), self.name(), &identity).await?;
        if !recorded {
            self.store.check_writable().await?;
            record_identity(self.store.as_ref(), self.name(), &identity).await?;
        }
        Ok(conn)
    }

    /// Runs one dump. Returns `Ok(true)` only after a shutdown made everything durable.
    async fn stream(
        &self,
        conn: MysqlConnection,
        archiver: &mut BinlogArchiver,
        shutdown: &CancellationToken,
    ) -> Result<bool, SourceError> {
        let Some(start) = archiver.received() else {
            return Err(ArchiveError::NoFile.into());
        };
        check_not_purged(conn.info(), &start)?;
        archiver.progress().connected(conn.info());
        let mut options = DumpOptions::new(self.config.server_id, DumpStart::Position(start));
        options.heartbeat = HEARTBEAT;
        let mut stream = conn.start_dump(&options).await?;
        self.metrics.set_connected(true);
        let flush_every_event = self.config.common.flush_interval.is_zero();
        let period = self
            .config
            .common
            .flush_interval
            .max(Duration::from_millis(1));
        let mut flush_tick = tokio::time::interval_at(Instant::now() + period, period);
        flush_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    archiver.drain().await;
                    tracing::info!("everything received is durable; stopping");
                    stream.close().await;
                    return Ok(true);
                }
                _ = archiver.wait_upload() => {}
                item = stream.next() => {
                    if let DumpItem::Event { event, .. } = item? {
                        archiver.append(event).await?;
                    }
                    if flush_every_event {
                        archiver.flush();
                    }
                }
                _ = flush_tick.tick(), if !flush_every_event => archiver.flush(),
            }
        }
    }
}

/// The identity a server's archive is recorded under.
fn identity_of(info: &ServerInfo) -> Result<SourceIdentity, SourceError> {
    match (&info.server_uuid, info.gtid_domain_id) {
        (_, Some(domain_id)) if info.is_mariadb => Ok(SourceIdentity::Mariadb {
            domain_id,
            server_id: info.server_id,
        }),
        (Some(uuid), _) => Ok(SourceIdentity::Mysql {
            server_uuid: uuid
                .parse()
                .map_err(|_| SourceError::BadUuid { uuid: uuid.clone() })?,
        }),
        _ => Ok(SourceIdentity::Mariadb {
            domain_id: info.gtid_domain_id.unwrap_or(0),
            server_id: info.server_id,
        }),
    }
}

/// Where the archive continues, given what it holds and what the server has.
fn resume_from(catalog: &BinlogCatalog, info: &ServerInfo) -> ResumeFrom {
    match catalog.newest() {
        Some((server, file, objects)) if let Some(len) = objects.complete_len() => {
            ResumeFrom::AfterFile {
                server,
                file: file.clone(),
                len,
            }
        }
        // A complete file whose index is missing (a crash between the two uploads) is
        // streamed again from its start, and both are written anew.
        Some((server, file, objects)) => ResumeFrom::Pieces {
            server,
            file: file.clone(),
            chain: objects.chain(),
        },
        None => ResumeFrom::Empty {
            file: info.current.file().clone(),
        },
    }
}

/// Refuses to dump from a file the server no longer has: that stretch of binlog is lost,
/// and streaming on from the oldest file would hide the gap.
fn check_not_purged(info: &ServerInfo, start: &BinlogPos) -> Result<(), SourceError> {
    if info.binlogs.iter().any(|(file, _)| file == start.file()) {
        return Ok(());
    }
    let oldest = info
        .binlogs
        .first()
        .map_or_else(|| "none".to_owned(), |(file, _)| file.to_string());
    Err(SourceError::Purged {
        needed: start.file().to_string(),
        archived: start.clone(),
        oldest,
    })
}
