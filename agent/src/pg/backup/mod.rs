//! Base backups: `BASE_BACKUP` streamed into the store as chunk objects, the manifest, and
//! last of all the `meta` that makes the backup exist (docs/storage-format.md, "Base backups").
//!
//! - `chunks`: tar streams → 16 MiB chunk objects, with bounded memory.
//! - `walwait`: waiting until the archive holds the WAL the backup needs.
//!
//! [`PgScheduled`] is how `logship run`'s schedule ([`crate::backup::schedule`]) takes them.
//!
//! The meta is written only once the WAL from the start to the end LSN is archived, so every
//! backup a reader sees can be restored. A failed backup deletes what it wrote (a backup
//! without meta is invisible anyway, so a failed deletion only costs space).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use jiff::Timestamp;
use logship_protocol::archive::backup::{BackupId, BackupMeta, CheckpointMode, ManifestMeta};
use logship_protocol::archive::identity::SourceIdentity;
use logship_protocol::archive::key::{self, ArchiveKey, SourceName};
use logship_protocol::archive::object::{self, Codec};
use logship_protocol::pg::basebackup::{
    BackupStreamMessage, BaseBackupOptions, archive_tablespace,
};
use logship_protocol::pg::manifest::{BackupManifest, ManifestError};
use logship_protocol::pg::{Lsn, TimelineId, WalSegSize};
use tracing::Instrument;

use crate::backup::chunks::{delete_all, put};
use crate::backup::schedule::{Failed, ScheduledBackup, Taken};
use crate::config::{PgSourceConfig, SourceOptionsError};
use crate::identity::{IdentityError, verify_identity};
use crate::pg::conn::{ConnectOptions, PgError, ReplicationConnection};
use crate::store::{Store, StoreError};

mod chunks;
mod walwait;

pub use chunks::CHUNK_BYTES;

use chunks::ChunkWriter;
use walwait::{NeededWal, wait_for_wal};

/// How long a backup waits for its WAL to be archived unless told otherwise.
pub const DEFAULT_WAL_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How a backup is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// How the server runs the checkpoint the backup starts from.
    pub checkpoint: CheckpointMode,
    /// A limit on the server's send rate in kB/s.
    pub max_rate_kbps: Option<u32>,
    /// How long to wait for the backup's WAL to be archived before giving up.
    pub wal_timeout: Duration,
}

impl BackupSettings {
    /// The settings a source's configuration asks for.
    pub fn from_config(config: &PgSourceConfig) -> BackupSettings {
        BackupSettings {
            checkpoint: config.backup_checkpoint,
            max_rate_kbps: config.backup_max_rate,
            wal_timeout: DEFAULT_WAL_TIMEOUT,
        }
    }
}

/// Why a backup failed; nothing it wrote is left visible.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Pg(#[from] PgError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(
        "no archive for source \"{source_name}\" yet: start logship run first, so the WAL a backup needs is archived"
    )]
    NoArchive { source_name: String },
    #[error(transparent)]
    Options(#[from] SourceOptionsError),
    #[error(
        "the server reports server_version_num {value:?}, which is not a number (is this PostgreSQL 15 or later?)"
    )]
    BadVersion { value: String },
    #[error(
        "backup {id} already exists or another logship is taking it (two backups started at the same checkpoint; take the next one later)"
    )]
    AlreadyExists { id: BackupId },
    #[error(
        "backup {id}: the server switched from timeline {start} to {end} during the backup (take the backup again on the new timeline)"
    )]
    TimelineSwitch {
        id: BackupId,
        start: TimelineId,
        end: TimelineId,
    },
    #[error(
        "backup {id}: the server sent an archive named {name:?} (expected base.tar or <oid>.tar; is this logship older than the server?)"
    )]
    UnknownArchive { id: BackupId, name: String },
    #[error(
        "backup {id}: the server sent tablespace {oid} twice (report this as a bug, with the PostgreSQL version)"
    )]
    DuplicateArchive { id: BackupId, oid: u32 },
    #[error(
        "backup {id}: the server sent archive data outside an archive (report this as a bug, with the PostgreSQL version)"
    )]
    DataOutsideArchive { id: BackupId },
    #[error(
        "backup {id}: the server sent no backup_manifest (is the server PostgreSQL 15 or later?)"
    )]
    NoManifest { id: BackupId },
    #[error("backup {id}: {source}")]
    Manifest {
        id: BackupId,
        #[source]
        source: ManifestError,
    },
    #[error(
        "backup {id}: tablespace {oid} has more chunks than the format can number (the tablespace is over 64 PiB)"
    )]
    TooManyChunks { id: BackupId, oid: u32 },
    #[error(
        "backup {id}: an upload of tablespace {oid} did not report back (report this as a bug)"
    )]
    ChunksMissing { id: BackupId, oid: u32 },
    #[error("backup upload task failed: {reason} (retry the backup)")]
    Task { reason: String },
    #[error(
        "WAL up to {end} is not archived yet after {waited} (is logship run streaming source \"{source_name}\"?); the backup is not complete",
        waited = human(*.waited)
    )]
    WalNotArchived {
        end: Lsn,
        waited: Duration,
        source_name: String,
    },
}

impl BackupError {
    /// Whether the backup's own check failed (the manifest), rather than getting it.
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            BackupError::Manifest { .. } | BackupError::NoManifest { .. }
        )
    }
}

/// A duration as the configuration writes it: `5m`, `300ms`, `1h 30m`.
fn human(duration: Duration) -> String {
    match jiff::SignedDuration::try_from(duration) {
        Ok(signed) => format!("{signed:#}"),
        Err(_) => format!("{duration:?}"),
    }
}

/// The options a source connects with for backups: its URL, password file and a name of its own
/// in `pg_stat_replication`.
pub fn connect_options(config: &PgSourceConfig) -> Result<ConnectOptions, BackupError> {
    Ok(config.connect_options(&format!("{}-backup", config.application_name))?)
}

/// Takes one base backup of `source` into `store` and returns its meta, once durable.
///
/// Refuses a source that `logship run` has not archived yet, or one whose archive belongs to
/// another server. Dropping the future abandons the backup; what it wrote stays invisible.
pub async fn take_backup(
    store: Arc<dyn Store>,
    source: &SourceName,
    options: &ConnectOptions,
    settings: &BackupSettings,
) -> Result<BackupMeta, BackupError> {
    let span = tracing::info_span!("backup", source = %source);
    async {
        let started = Instant::now();
        let mut conn = ReplicationConnection::connect(options).await?;
        let server = check_server(&mut conn, store.as_ref(), source).await?;
        let meta = stream_backup(&mut conn, store, source, &server, settings).await?;
        conn.close().await;
        tracing::info!(
            id = %meta.id,
            start_lsn = %meta.start_lsn,
            end_lsn = %meta.end_lsn,
            raw_bytes = meta.raw_bytes,
            stored_bytes = meta.stored_bytes,
            took = ?started.elapsed(),
            "base backup complete"
        );
        Ok(meta)
    }
    .instrument(span)
    .await
}

/// What the backup records about the server.
struct ServerInfo {
    system_id: u64,
    seg: WalSegSize,
    version: String,
    version_num: u32,
}

/// Identifies the server and checks that the store archives it for `source`.
async fn check_server(
    conn: &mut ReplicationConnection,
    store: &dyn Store,
    source: &SourceName,
) -> Result<ServerInfo, BackupError> {
    let system = conn.identify_system().await?;
    let seg = conn.wal_segment_size().await?;
    let identity = SourceIdentity::Postgres {
        system_id: system.system_id,
        wal_seg_size: seg,
    };
    if !verify_identity(store, source, &identity).await? {
        return Err(BackupError::NoArchive {
            source_name: source.to_string(),
        });
    }
    let version_num = conn.show("server_version_num").await?;
    let version_num = version_num
        .trim()
        .parse()
        .map_err(|_| BackupError::BadVersion { value: version_num })?;
    // `server_version` may carry the packager's suffix: "15.8 (Debian 15.8-1.pgdg120+1)".
    let version = conn
        .server_version()
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok(ServerInfo {
        system_id: system.system_id,
        seg,
        version,
        version_num,
    })
}

/// Runs BASE_BACKUP into the store; on failure, deletes what it wrote.
async fn stream_backup(
    conn: &mut ReplicationConnection,
    store: Arc<dyn Store>,
    source: &SourceName,
    server: &ServerInfo,
    settings: &BackupSettings,
) -> Result<BackupMeta, BackupError> {
    let start_time = Timestamp::now();
    let options = BaseBackupOptions {
        label: format!("logship {}", start_time.strftime("%Y-%m-%dT%H:%M:%SZ")),
        fast_checkpoint: settings.checkpoint == CheckpointMode::Fast,
        max_rate_kbps: settings.max_rate_kbps,
        manifest: true,
        manifest_checksums: None,
        progress: true,
        tablespace_map: true,
    };
    let mut stream = conn.base_backup(&options).await?;
    let start = stream.start().clone();
    let id = BackupId::new(start.timeline, start.start_lsn);
    tracing::debug!(%id, start_lsn = %start.start_lsn, tli = %start.timeline, "base backup started");
    if !store
        .list(&key::backup_prefix(source, id))
        .await?
        .is_empty()
    {
        return Err(BackupError::AlreadyExists { id });
    }
    let mut writer = ChunkWriter::new(store.clone(), source.clone(), id);
    let manifest_key = ArchiveKey::BackupManifest { id }.format(source);
    let result = async {
        let mut manifest: Option<Vec<u8>> = None;
        while let Some(message) = stream.next().await? {
            match message {
                BackupStreamMessage::NewArchive {
                    name,
                    tablespace_location,
                } => {
                    let oid = archive_tablespace(&name)
                        .filter(|_| manifest.is_none())
                        .ok_or(BackupError::UnknownArchive { id, name })?;
                    writer.begin(oid, tablespace_location).await?;
                }
                BackupStreamMessage::Data(data) => match &mut manifest {
                    Some(manifest) => manifest.extend_from_slice(&data),
                    None => writer.write(&data).await?,
                },
                BackupStreamMessage::Progress(done) => tracing::debug!(done, "backup progress"),
                BackupStreamMessage::ManifestFollows => {
                    writer.end().await?;
                    manifest = Some(Vec::new());
                }
            }
        }
        let end = stream.finish()?;
        let end_time = Timestamp::now();
        if end.timeline != start.timeline {
            return Err(BackupError::TimelineSwitch {
                id,
                start: start.timeline,
                end: end.timeline,
            });
        }
        let tablespaces = writer.finish().await?;
        let manifest = manifest.ok_or(BackupError::NoManifest { id })?;
        BackupManifest::parse(&manifest).map_err(|source| BackupError::Manifest { id, source })?;
        let stored = object::encode(&manifest, Codec::Lz4);
        let manifest_meta = ManifestMeta {
            raw_bytes: manifest.len() as u64,
            stored_bytes: stored.len() as u64,
            crc: crc32fast::hash(&manifest),
        };
        drop(manifest);
        put(store.as_ref(), &manifest_key, Bytes::from(stored)).await?;
        tracing::debug!(end_lsn = %end.end_lsn, "backup data stored; waiting for its WAL to be archived");
        let needed = NeededWal {
            tli: start.timeline,
            start: start.start_lsn,
            end: end.end_lsn,
        };
        wait_for_wal(store.as_ref(), source, server.seg, needed, settings.wal_timeout).await?;
        let meta = BackupMeta {
            id,
            label: options.label.clone(),
            timeline: start.timeline,
            start_lsn: start.start_lsn,
            end_lsn: end.end_lsn,
            start_time,
            end_time,
            pg_version: server.version.clone(),
            pg_version_num: server.version_num,
            system_id: server.system_id,
            wal_segment_size: server.seg,
            raw_bytes: tablespaces.iter().map(|t| t.raw_bytes).sum(),
            stored_bytes: tablespaces.iter().map(|t| t.stored_bytes).sum(),
            tablespaces,
            manifest: Some(manifest_meta),
            checkpoint: settings.checkpoint,
        };
        let meta_key = ArchiveKey::BackupMeta { id }.format(source);
        put(
            store.as_ref(),
            &meta_key,
            object::encode(&meta.to_json(), Codec::None).into(),
        )
        .await?;
        Ok(meta)
    }
    .await;
    if result.is_err() {
        let mut keys = writer.abandon().await;
        keys.push(manifest_key);
        delete_all(store.as_ref(), &keys).await;
    }
    result
}

/// A PostgreSQL source's backups as `logship run`'s schedule takes them.
pub struct PgScheduled {
    /// Where backups go.
    pub store: Arc<dyn Store>,
    /// The source to back up.
    pub source: SourceName,
    /// How to connect to its server.
    pub options: ConnectOptions,
    /// How each backup is taken.
    pub settings: BackupSettings,
}

#[async_trait::async_trait]
impl ScheduledBackup for PgScheduled {
    async fn take(&self) -> Result<Taken, Failed> {
        match take_backup(
            self.store.clone(),
            &self.source,
            &self.options,
            &self.settings,
        )
        .await
        {
            Ok(meta) => Ok(Taken {
                end_time: meta.end_time,
                raw_bytes: meta.raw_bytes,
            }),
            Err(err) => Err(Failed {
                verification: err.is_verification(),
                message: err.to_string(),
            }),
        }
    }

    fn end_time(&self, meta: &[u8]) -> Result<Timestamp, String> {
        BackupMeta::from_json(meta)
            .map(|meta| meta.end_time)
            .map_err(|err| err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_configured() {
        assert_eq!(human(DEFAULT_WAL_TIMEOUT), "5m");
        assert_eq!(human(Duration::from_millis(300)), "300ms");
        assert_eq!(human(Duration::from_secs(5400)), "1h 30m");
    }
}
