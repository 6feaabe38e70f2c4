//! Logical base backups of a MySQL/MariaDB source: the schema script and every table's rows,
//! read over several connections whose snapshots line up with one binlog position, stored
//! as chunk objects, and last of all the `meta` that makes the backup exist
//! (docs/storage-format.md, "MySQL/MariaDB logical backups").
//!
//! - `snapshot`: lining the connections up, and how long commits wait for it.
//! - `schema`: the schema script and the plan of each table's rows.
//! - `rows`: the tables' rows, in parts read in parallel.
//! - `binlogwait`: waiting until the archive holds the binlog up to the snapshot.
//!
//! The meta is written only once the binlog up to the snapshot's position is archived, so
//! every backup a reader sees can be rolled forward. A failed backup deletes what it wrote.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jiff::Timestamp;
use logship_protocol::archive::backup::BackupId;
use logship_protocol::archive::identity::SourceIdentity;
use logship_protocol::archive::key::{self, ArchiveKey, SourceName};
use logship_protocol::archive::object::{self, Codec};
use logship_protocol::mysql::BinlogPos;
use logship_protocol::mysql::backup::{
    KIND, METHOD_LOGICAL, MysqlBackupMeta, ObjectMeta, PartMeta, TableMeta,
};
use logship_protocol::mysql::key::ServerNo;
use logship_protocol::mysql::schema::quote_ident;
use tracing::Instrument;

use crate::archive::{ReadError, read_object};
use crate::backup::chunks::{ChunkError, ChunkWriter, delete_all, put};
use crate::backup::schedule::{Failed, ScheduledBackup, Taken};
use crate::config::{MysqlSourceConfig, PasswordFileError};
use crate::identity::{IdentityError, read_identity};
use crate::mysql::conn::{ConnectOptions, MysqlConnection, MysqlError, SqlConnection};
use crate::mysql::history::{HistoryError, ServerHistory};
use crate::store::{Store, StoreError};

mod binlogwait;
mod rows;
mod schema;
mod snapshot;

/// How long a backup waits for its binlog to be archived unless told otherwise.
pub const DEFAULT_BINLOG_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Uploads each worker runs at once: one chunk is filled while the last is on the wire.
const WORKER_IN_FLIGHT: usize = 1;

/// How a logical backup is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSettings {
    /// Connections that read rows in parallel; at least 1.
    pub workers: usize,
    /// How long to wait for the binlog up to the snapshot to be archived.
    pub binlog_timeout: Duration,
}

impl BackupSettings {
    /// The settings a source's configuration asks for.
    pub fn from_config(config: &MysqlSourceConfig) -> BackupSettings {
        BackupSettings {
            workers: config.backup_workers.max(1),
            binlog_timeout: DEFAULT_BINLOG_TIMEOUT,
        }
    }
}

/// Why a backup failed; nothing it wrote is left visible.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Mysql(#[from] MysqlError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Chunks(#[from] ChunkError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    History(#[from] Box<HistoryError>),
    #[error(transparent)]
    PasswordFile(#[from] PasswordFileError),
    #[error(
        "no archive for source \"{source_name}\" yet: start logship run first, so the binlog a backup needs is archived"
    )]
    NoArchive { source_name: String },
    #[error(
        "source \"{source_name}\" archives server_id {archived} now, but the server has server_id {server_id} (back up the server logship run streams)"
    )]
    OtherServer {
        source_name: String,
        archived: u32,
        server_id: u32,
    },
    #[error(
        "the snapshot's position {position} is past 4 GiB into the binlog file, which a backup id cannot name (FLUSH BINARY LOGS and take the backup again)"
    )]
    PositionTooLarge { position: BinlogPos },
    #[error(
        "backup {id} already exists or another logship is taking it (take the next one after a commit)"
    )]
    AlreadyExists { id: BackupId },
    #[error(
        "unexpected reply from the server: {what} (check that it is MySQL 8.0+ or MariaDB 10.4+)"
    )]
    BadReply { what: String },
    #[error("backup task failed: {reason} (retry the backup)")]
    Task { reason: String },
    #[error(
        "binlog up to {position} of server {server} is not archived yet after {waited:?} (is logship run streaming source \"{source_name}\"?); the backup is not complete"
    )]
    BinlogNotArchived {
        position: BinlogPos,
        server: u32,
        waited: Duration,
        source_name: String,
    },
}

/// The options a source connects with for backups.
pub fn connect_options(config: &MysqlSourceConfig) -> Result<ConnectOptions, BackupError> {
    Ok(ConnectOptions::from_url(
        &config.common.url,
        config.common.file_password()?,
    )?)
}

/// Takes one logical backup of `source` into `store` and returns its meta, once durable.
///
/// Refuses a source that `logship run` has not archived yet, or whose archive follows
/// another server. Dropping the future abandons the backup; what it wrote stays invisible.
pub async fn take_backup(
    store: Arc<dyn Store>,
    source: &SourceName,
    options: &ConnectOptions,
    settings: &BackupSettings,
) -> Result<MysqlBackupMeta, BackupError> {
    let span = tracing::info_span!("backup", source = %source);
    async {
        let started = Instant::now();
        let meta = backup(store, source, options, settings).await?;
        let secs = started.elapsed().as_secs_f64();
        tracing::info!(
            id = %meta.id,
            position = %meta.position,
            gtid = %meta.gtid_position,
            raw_bytes = meta.raw_bytes,
            stored_bytes = meta.stored_bytes,
            commit_block_seconds = meta.commit_block_seconds,
            took = ?started.elapsed(),
            mb_per_s = meta.raw_bytes as f64 / 1e6 / secs.max(1e-9),
            "logical backup complete"
        );
        Ok(meta)
    }
    .instrument(span)
    .await
}

/// The server number the archive follows now, checked against the server behind `control`.
async fn current_server(
    store: &dyn Store,
    source: &SourceName,
    control: &MysqlConnection,
) -> Result<ServerNo, BackupError> {
    let first_server_id = match read_identity(store, source).await? {
        Some(SourceIdentity::Mariadb { server_id, .. }) => server_id,
        Some(_) => control.info().server_id,
        None => {
            return Err(BackupError::NoArchive {
                source_name: source.to_string(),
            });
        }
    };
    let history = ServerHistory::load(store, source, first_server_id)
        .await
        .map_err(Box::new)?;
    let (server, archived) = history.current();
    let server_id = control.info().server_id;
    if control.info().is_mariadb && server_id != archived {
        return Err(BackupError::OtherServer {
            source_name: source.to_string(),
            archived,
            server_id,
        });
    }
    Ok(server)
}

async fn backup(
    store: Arc<dyn Store>,
    source: &SourceName,
    options: &ConnectOptions,
    settings: &BackupSettings,
) -> Result<MysqlBackupMeta, BackupError> {
    let start_time = Timestamp::now();
    let mut control = MysqlConnection::connect(options).await?;
    let server = current_server(store.as_ref(), source, &control).await?;
    let mut workers = Vec::with_capacity(settings.workers);
    for _ in 0..settings.workers.max(1) {
        workers.push(SqlConnection::connect(options, false).await?);
    }
    let lock = snapshot::lock_schema(&mut control, &mut workers).await?;
    let (script, tables) = schema::read_schema(&mut control).await?;
    let snap = lock.line_up(&mut control, &mut workers).await?;
    let (server_id, server_version) = (control.info().server_id, control.info().version.clone());
    control.close().await;
    let id = MysqlBackupMeta::id_for(server, &snap.position).ok_or_else(|| {
        BackupError::PositionTooLarge {
            position: snap.position.clone(),
        }
    })?;
    if !store
        .list(&key::backup_prefix(source, id))
        .await?
        .is_empty()
    {
        return Err(BackupError::AlreadyExists { id });
    }
    let schema_key = ArchiveKey::DumpSchema { id }.format(source);
    let mut written = vec![schema_key.clone()];
    let result = async {
        let content = script.encode();
        let stored = object::encode(&content, Codec::Lz4);
        let schema = ObjectMeta {
            raw_bytes: content.len() as u64,
            stored_bytes: stored.len() as u64,
            crc: crc32fast::hash(&content),
        };
        put(store.as_ref(), &schema_key, Bytes::from(stored)).await?;
        let tables = Arc::new(tables);
        let bounds = key_bounds(&mut workers, &tables).await?;
        let parts = rows::plan_parts(&tables, &bounds);
        let part_tables: BTreeMap<u32, usize> = parts.iter().map(|p| (p.number, p.table)).collect();
        let (rows, chunks) =
            read_rows(&store, source, id, workers, parts, &tables, &mut written).await?;
        let end_time = Timestamp::now();
        let table_metas = table_metas(&tables, &part_tables, &rows, &chunks);
        let raw_bytes = schema.raw_bytes + table_metas.iter().map(|t| t.raw_bytes).sum::<u64>();
        let stored_bytes =
            schema.stored_bytes + table_metas.iter().map(|t| t.stored_bytes).sum::<u64>();
        binlogwait::wait_for_binlog(
            store.as_ref(),
            source,
            server,
            &snap.position,
            settings.binlog_timeout,
        )
        .await?;
        let meta = MysqlBackupMeta {
            kind: KIND.into(),
            method: METHOD_LOGICAL.into(),
            id,
            start_time,
            end_time,
            snapshot_time: snap.time,
            server,
            position: snap.position.clone(),
            gtid_position: snap.gtid_position.clone(),
            server_id,
            server_version,
            raw_bytes,
            stored_bytes,
            commit_block_seconds: snap.commit_block.as_secs_f64(),
            schema,
            tables: table_metas,
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
        delete_all(store.as_ref(), &written).await;
    }
    result
}

/// The smallest and largest key of each table worth reading in ranges, in the snapshot.
async fn key_bounds(
    workers: &mut [SqlConnection],
    tables: &[schema::TablePlan],
) -> Result<BTreeMap<usize, (i128, i128)>, BackupError> {
    let mut bounds = BTreeMap::new();
    let Some(conn) = workers.first_mut() else {
        return Ok(bounds);
    };
    for (t, table) in tables.iter().enumerate() {
        let Some(key) = &table.integer_key else {
            continue;
        };
        if rows::ranges_for(table.data_length) < 2 {
            continue;
        }
        let key = quote_ident(key);
        let sql = format!(
            "SELECT MIN({key}), MAX({key}) FROM {}.{}",
            quote_ident(&table.db),
            quote_ident(&table.name)
        );
        let found = conn.query(&sql).await?;
        let parse =
            |at: usize| -> Option<i128> { found.first()?.get(at)?.as_deref()?.parse().ok() };
        if let (Some(min), Some(max)) = (parse(0), parse(1)) {
            bounds.insert(t, (min, max));
        }
    }
    Ok(bounds)
}

/// Runs the workers over the parts; returns the rows and chunks of every part. The keys
/// written go to `written` whatever happens.
async fn read_rows(
    store: &Arc<dyn Store>,
    source: &SourceName,
    id: BackupId,
    workers: Vec<SqlConnection>,
    parts: Vec<rows::Part>,
    tables: &Arc<Vec<schema::TablePlan>>,
    written: &mut Vec<String>,
) -> Result<
    (
        BTreeMap<u32, u64>,
        BTreeMap<u32, crate::backup::StreamChunks>,
    ),
    BackupError,
> {
    let queue = Arc::new(Mutex::new(VecDeque::from(parts)));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, conn) in workers.into_iter().enumerate() {
        let source = source.clone();
        let key = move |table, chunk| ArchiveKey::DumpRows { id, table, chunk }.format(&source);
        let writer = ChunkWriter::new(store.clone(), id, key, WORKER_IN_FLIGHT);
        let span = tracing::info_span!("backup_worker", worker = n);
        tasks.spawn(rows::dump(conn, queue.clone(), tables.clone(), writer).instrument(span));
    }
    let mut rows = BTreeMap::new();
    let mut chunks = BTreeMap::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let outcome = match joined {
            Ok(outcome) => outcome,
            Err(err) => {
                first_error.get_or_insert(BackupError::Task {
                    reason: err.to_string(),
                });
                continue;
            }
        };
        written.extend(outcome.written);
        match outcome.result {
            Ok((r, c)) => {
                rows.extend(r);
                chunks.extend(c);
            }
            Err(err) => {
                // The others would read on for nothing.
                if let Ok(mut queue) = queue.lock() {
                    queue.clear();
                }
                first_error.get_or_insert(err);
            }
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok((rows, chunks)),
    }
}

/// The meta's tables, in plan order, each with its parts in number order.
fn table_metas(
    tables: &[schema::TablePlan],
    part_tables: &BTreeMap<u32, usize>,
    rows: &BTreeMap<u32, u64>,
    chunks: &BTreeMap<u32, crate::backup::StreamChunks>,
) -> Vec<TableMeta> {
    let mut metas: Vec<TableMeta> = tables
        .iter()
        .map(|t| TableMeta {
            db: t.db.clone(),
            name: t.name.clone(),
            columns: t.columns.clone(),
            bit_columns: t.bit_columns.clone(),
            rows: 0,
            raw_bytes: 0,
            stored_bytes: 0,
            parts: Vec::new(),
        })
        .collect();
    for (&number, &t) in part_tables {
        let Some(table) = metas.get_mut(t) else {
            continue;
        };
        let stream = chunks.get(&number).cloned().unwrap_or_default();
        let part_rows = rows.get(&number).copied().unwrap_or(0);
        table.rows += part_rows;
        table.raw_bytes += stream.raw_bytes;
        table.stored_bytes += stream.stored_bytes;
        table.parts.push(PartMeta {
            number,
            rows: part_rows,
            chunks: stream.chunks,
            raw_bytes: stream.raw_bytes,
            stored_bytes: stream.stored_bytes,
            chunk_crcs: stream.chunk_crcs,
        });
    }
    metas
}

/// Why the backups of a source could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}", .0.with_fix("delete the backup's meta to drop the backup, or restore the object from a copy of the store"))]
    Damaged(ReadError),
}

/// The complete logical backups of a MySQL/MariaDB source, oldest first.
pub async fn list_backups(
    store: &dyn Store,
    source: &SourceName,
) -> Result<Vec<MysqlBackupMeta>, ListError> {
    let mut ids: Vec<BackupId> = Vec::new();
    for listed in store.list(&key::backups_prefix(source)).await? {
        if let Ok((_, ArchiveKey::BackupMeta { id })) = ArchiveKey::parse(&listed.key) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    let mut metas = Vec::with_capacity(ids.len());
    for id in ids {
        let meta_key = ArchiveKey::BackupMeta { id }.format(source);
        let content = match read_object(store, &meta_key).await {
            Ok(Some(content)) => content,
            // Pruned since the listing.
            Ok(None) => continue,
            Err(ReadError::Store(err)) => return Err(ListError::Store(err)),
            Err(err) => return Err(ListError::Damaged(err)),
        };
        let meta = MysqlBackupMeta::from_json(&content).map_err(|e| {
            ListError::Damaged(ReadError::damaged(&meta_key, &e, e.is_unsupported()))
        })?;
        metas.push(meta);
    }
    Ok(metas)
}

/// A MySQL/MariaDB source's backups as `logship run`'s schedule takes them.
pub struct MysqlScheduled {
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
impl ScheduledBackup for MysqlScheduled {
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
                verification: false,
                message: err.to_string(),
            }),
        }
    }

    fn end_time(&self, meta: &[u8]) -> Result<Timestamp, String> {
        MysqlBackupMeta::from_json(meta)
            .map(|meta| meta.end_time)
            .map_err(|err| err.to_string())
    }
}
