//! One MySQL/MariaDB source: connect as a replica, check the server, claim the archive,
//! and stream the binlog into the archiver until shutdown, reconnecting as needed.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use logship_protocol::archive::SourceIdentity;
use logship_protocol::archive::key::SourceName;
use logship_protocol::mysql::key::ServerNo;
use logship_protocol::mysql::{BinlogFileName, BinlogPos};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::{MysqlSourceConfig, PasswordFileError};
use crate::identity::{IdentityError, read_identity, record_identity, verify_identity};
use crate::metrics::SourceMetrics;
use crate::mysql::archiver::{ArchiveError, BinlogArchiver, ResumeFrom};
use crate::mysql::catalog::BinlogCatalog;
use crate::mysql::conn::{
    ConnectOptions, DumpItem, DumpOptions, DumpStart, MysqlConnection, MysqlError, ServerInfo,
};
use crate::mysql::history::{HistoryError, ServerHistory, record_switch};
use crate::mysql::offsets::GlobalOffsets;
use crate::mysql::progress::BinlogProgress;
use crate::mysql::takeover::{PlanError, plan_takeover};
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
    #[error(transparent)]
    History(Box<HistoryError>),
    #[error(transparent)]
    Takeover(Box<PlanError>),
    #[error(
        "source {source_name:?} has followed as many servers as server numbers count (move the source's archive aside to start it anew)"
    )]
    TooManyServers { source_name: String },
    #[error(
        "the server reports server_uuid {uuid:?}, which is not a UUID (check the server's auto.cnf)"
    )]
    BadUuid { uuid: String },
    #[error(transparent)]
    Purged(Box<PurgedBinlog>),
}

/// Binlog the server purged before it was archived: the archive cannot go on past the gap.
#[derive(Debug, thiserror::Error)]
#[error(
    "binlog {lost_from} up to {oldest}:4 is lost: the server purged it before it was archived \
     (the archive ends at {archived}; the server's oldest binlog is {oldest}); to archive this \
     server again, move this source's prefix in store {store} aside or give the source a new \
     name, take a new base backup, and keep binlogs longer on the server \
     (binlog_expire_logs_seconds)"
)]
pub struct PurgedBinlog {
    /// Where the lost stretch starts.
    pub lost_from: BinlogPos,
    /// The end of the archive.
    pub archived: BinlogPos,
    /// The oldest binlog the server has: the lost stretch ends at its start.
    pub oldest: BinlogFileName,
    /// The store's URL.
    pub store: String,
}

impl From<HistoryError> for SourceError {
    fn from(err: HistoryError) -> SourceError {
        SourceError::History(Box::new(err))
    }
}

impl From<PlanError> for SourceError {
    fn from(err: PlanError) -> SourceError {
        SourceError::Takeover(Box::new(err))
    }
}

impl SourceError {
    /// Errors a reconnect cannot fix.
    fn is_permanent(&self) -> bool {
        match self {
            SourceError::Mysql(err) => err.is_config() || err.is_purged(),
            SourceError::Takeover(err) => match err.as_ref() {
                PlanError::Mysql(err) => err.is_config() || err.is_purged(),
                PlanError::Refused(_) => true,
                _ => false,
            },
            SourceError::History(err) => matches!(err.as_ref(), HistoryError::Damaged(_)),
            SourceError::Identity(IdentityError::Mismatch { .. })
            | SourceError::BadUuid { .. }
            | SourceError::TooManyServers { .. }
            | SourceError::Purged(_)
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
    /// Server warnings already logged: each is logged once, not at every reconnect.
    warned: Mutex<HashSet<String>>,
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
            warned: Mutex::default(),
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
        let (conn, mut archiver) = self.follow(conn).await?;
        let mut server_id = conn.info().server_id;
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
            match self.reconnect(&mut archiver, server_id).await {
                Ok(next) => {
                    server_id = next.info().server_id;
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

    /// Makes the archive follow the server behind `conn`: resumes where the archive ends
    /// when it is the archive's current server; otherwise it is another server of the
    /// stream, and its takeover is found and recorded first. Returns the connection to
    /// stream from and the archiver to feed.
    async fn follow(
        &self,
        conn: MysqlConnection,
    ) -> Result<(MysqlConnection, BinlogArchiver), SourceError> {
        let store = self.store.as_ref();
        let catalog = BinlogCatalog::load(store, self.name()).await?;
        let first_server_id = match read_identity(store, self.name()).await? {
            Some(SourceIdentity::Mariadb { server_id, .. }) => server_id,
            _ => conn.info().server_id,
        };
        let history = ServerHistory::load(store, self.name(), first_server_id).await?;
        let (current, current_id) = history.current();
        let info = conn.info();
        if !info.is_mariadb || info.server_id == current_id {
            let resume = resume_from(&catalog, &history, info);
            tracing::info!(server = current.get(), start = %resume.dump_start(), "starting the binlog dump");
            let takeover = history.switch(current).map(|s| s.start.clone());
            return Ok((
                conn,
                self.archiver(&catalog, &resume).with_takeover(takeover),
            ));
        }
        let Some(server) = current.next() else {
            return Err(SourceError::TooManyServers {
                source_name: self.name().to_string(),
            });
        };
        let domain = info.gtid_domain_id.unwrap_or(0);
        let (server_id, addr) = (info.server_id, conn.addr().to_owned());
        let switch = plan_takeover(
            store,
            self.name(),
            &catalog,
            &history,
            domain,
            conn,
            self.config.server_id,
        )
        .await?;
        tracing::info!(
            %addr, server_id, server = server.get(), previous_server_id = current_id,
            gtid_pos = %switch.gtid_pos, previous_end = %switch.previous_end, start = %switch.start,
            "another server of the GTID domain takes over the stream"
        );
        record_switch(store, self.name(), server, &switch).await?;
        // The takeover search read the binlog through the first connection's dump.
        let conn = self.connect().await?;
        let resume = ResumeFrom::Start {
            server,
            file: switch.start.file().clone(),
        };
        Ok((
            conn,
            self.archiver(&catalog, &resume)
                .with_takeover(Some(switch.start)),
        ))
    }

    fn archiver(&self, catalog: &BinlogCatalog, resume: &ResumeFrom) -> BinlogArchiver {
        let offsets =
            GlobalOffsets::from_archive(catalog, resume.server(), resume.dump_start().file());
        BinlogArchiver::new(
            self.store.clone(),
            self.name().clone(),
            BinlogProgress::new(self.metrics.clone(), offsets),
            resume,
        )
    }

    /// Connects again after an interruption. A different server behind the same URL (a
    /// failover behind a virtual address) is followed: what was received is made durable,
    /// then the new server takes over as at a start.
    async fn reconnect(
        &self,
        archiver: &mut BinlogArchiver,
        server_id: u32,
    ) -> Result<MysqlConnection, SourceError> {
        let conn = self.connect().await?;
        if conn.info().server_id == server_id {
            return Ok(conn);
        }
        archiver.drain().await;
        let (conn, next) = self.follow(conn).await?;
        *archiver = next;
        Ok(conn)
    }

    /// Logs each of the server's warnings the first time it is seen.
    fn warn_once(&self, warnings: &[String]) {
        let mut warned = self
            .warned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for warning in warnings {
            if warned.insert(warning.clone()) {
                tracing::warn!("{warning}");
            }
        }
    }

    /// Connects, checks the server and claims the archive for it.
    async fn connect(&self) -> Result<MysqlConnection, SourceError> {
        let options =
            ConnectOptions::from_url(&self.config.common.url, self.config.common.file_password()?)?;
        let mut conn = MysqlConnection::connect(&options).await?;
        conn.check_server_id(&self.dump_options(conn.info().current.clone()))
            .await?;
        let info = conn.info();
        self.warn_once(&info.warnings);
        let identity = identity_of(info)?;
        // Check everything before writing anything to the store.
        let recorded = verify_identity(self.store.as_ref(), self.name(), &identity).await?;
        if !recorded {
            self.store.check_writable().await?;
            record_identity(self.store.as_ref(), self.name(), &identity).await?;
        }
        Ok(conn)
    }

    /// The dump this source asks for, from `start`.
    fn dump_options(&self, start: BinlogPos) -> DumpOptions {
        let mut options = DumpOptions::new(self.config.server_id, DumpStart::Position(start));
        options.heartbeat = HEARTBEAT;
        options
    }

    /// Runs one dump. Returns `Ok(true)` only after a shutdown made everything durable.
    async fn stream(
        &self,
        conn: MysqlConnection,
        archiver: &mut BinlogArchiver,
        shutdown: &CancellationToken,
    ) -> Result<bool, SourceError> {
        let (Some(received), Some(archived)) = (archiver.received(), archiver.archive_end()) else {
            return Err(ArchiveError::NoFile.into());
        };
        let info = conn.info();
        let binlogs: Vec<&BinlogFileName> = info.binlogs.iter().map(|(f, _)| f).collect();
        let between_files = archiver.is_between_files();
        let start =
            dump_start(received, archived.clone(), between_files, &binlogs).map_err(|lost| {
                SourceError::Purged(Box::new(PurgedBinlog {
                    lost_from: lost.lost_from,
                    archived,
                    oldest: lost.oldest.unwrap_or_else(|| info.current.file().clone()),
                    store: self.store.url().to_owned(),
                }))
            })?;
        archiver.progress().connected(info);
        let mut stream = conn.start_dump(&self.dump_options(start)).await?;
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
                    match item? {
                        DumpItem::Event { event, .. } => archiver.append(event).await?,
                        DumpItem::Eof => {
                            tracing::warn!("the server ended the binlog dump; reconnecting");
                            return Ok(false);
                        }
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

/// Where the archive continues on its current server, given what it holds and what the
/// server has.
fn resume_from(catalog: &BinlogCatalog, history: &ServerHistory, info: &ServerInfo) -> ResumeFrom {
    let (current, _) = history.current();
    let newest = catalog.newest().filter(|(server, _, _)| *server == current);
    match newest {
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
        // The switch is recorded, and none of the server's binlog is archived yet.
        None if let Some(switch) = history.switch(current) => ResumeFrom::Start {
            server: current,
            file: switch.start.file().clone(),
        },
        None => ResumeFrom::Start {
            server: ServerNo::FIRST,
            file: info.current.file().clone(),
        },
    }
}

/// What the server no longer has: where the lost stretch starts, and its oldest binlog.
#[derive(Debug, PartialEq, Eq)]
struct Lost {
    lost_from: BinlogPos,
    oldest: Option<BinlogFileName>,
}

/// Where the next dump starts, given the end of what was received, the end of the
/// archive in the same file (`between_files`: the end of a complete file) and the
/// binlogs the server has, oldest first. Refuses a file the server purged: that stretch
/// of binlog is lost, and streaming on from the oldest file would hide the gap. After a
/// complete file nothing of it is owed, so the next file continues the archive with no
/// gap when the server still has that one.
fn dump_start(
    received: BinlogPos,
    archived: BinlogPos,
    between_files: bool,
    binlogs: &[&BinlogFileName],
) -> Result<BinlogPos, Lost> {
    let has = |file: &BinlogFileName| binlogs.contains(&file);
    if has(received.file()) {
        return Ok(received);
    }
    let next = archived
        .file()
        .next()
        .map(|file| BinlogPos::new(file, BinlogPos::FIRST_EVENT));
    let lost_from = match next {
        Some(next) if between_files && has(next.file()) => return Ok(next),
        Some(next) if between_files => next,
        _ => archived,
    };
    Err(Lost {
        lost_from,
        oldest: binlogs.first().map(|&f| f.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> BinlogFileName {
        BinlogFileName::new(name).unwrap()
    }

    fn pos(name: &str, offset: u64) -> BinlogPos {
        BinlogPos::new(file(name), offset)
    }

    /// The dump start for an archive that ends at `archived`, re-streamed from the file's
    /// start when it ends within a file (as after a restart).
    fn start(archived: BinlogPos, between_files: bool, server: &[&str]) -> Result<BinlogPos, Lost> {
        let server: Vec<BinlogFileName> = server.iter().map(|n| file(n)).collect();
        let received = match between_files {
            true => archived.clone(),
            false => BinlogPos::new(archived.file().clone(), BinlogPos::FIRST_EVENT),
        };
        dump_start(
            received,
            archived,
            between_files,
            &server.iter().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn continues_where_the_server_still_has_the_file() {
        let server = ["binlog.000002", "binlog.000003"];
        assert_eq!(
            start(pos("binlog.000002", 900), false, &server),
            Ok(pos("binlog.000002", 4))
        );
        assert_eq!(
            start(pos("binlog.000002", 900), true, &server),
            Ok(pos("binlog.000002", 900))
        );
    }

    /// Regression: after a complete file the server purged, the dump asked for that file
    /// and the source stopped, though nothing was lost.
    #[test]
    fn after_a_complete_purged_file_continues_with_the_next() {
        assert_eq!(
            start(
                pos("binlog.000001", 900),
                true,
                &["binlog.000002", "binlog.000003"]
            ),
            Ok(pos("binlog.000002", 4))
        );
    }

    #[test]
    fn names_the_lost_stretch() {
        let server = ["binlog.000003", "binlog.000004"];
        assert_eq!(
            start(pos("binlog.000001", 900), true, &server),
            Err(Lost {
                lost_from: pos("binlog.000002", 4),
                oldest: Some(file("binlog.000003")),
            })
        );
        // Within a file, the rest of it is lost too; so is all of it when the next one is there.
        assert_eq!(
            start(pos("binlog.000002", 900), false, &server),
            Err(Lost {
                lost_from: pos("binlog.000002", 900),
                oldest: Some(file("binlog.000003")),
            })
        );
        assert_eq!(
            start(pos("binlog.000002", 900), false, &["binlog.000003"]),
            Err(Lost {
                lost_from: pos("binlog.000002", 900),
                oldest: Some(file("binlog.000003")),
            })
        );
    }
}
