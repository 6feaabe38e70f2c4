//! Loading a logical backup into an empty server: the databases and tables (without their
//! plain secondary keys), every table's rows with `LOAD DATA LOCAL INFILE` fed chunk by chunk
//! from the store over several connections, then the keys, then the views, triggers,
//! routines and events, and last the accounts and grants.
//!
//! Nothing of the load reaches the restored server's binlog (`sql_log_bin = 0`); foreign
//! keys and unique keys are not checked while rows go in. Every chunk is checked against
//! its CRC in the meta before a byte of it is sent.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logship_protocol::archive::key::{ArchiveKey, SourceName};
use logship_protocol::mysql::backup::{MysqlBackupMeta, PartMeta, TableMeta};
use logship_protocol::mysql::schema::{Phase, SchemaScript, quote_ident};
use tracing::Instrument;

use crate::archive::{ReadError, read_object};
use crate::mysql::conn::{ConnectOptions, MysqlError, SqlConnection};
use crate::store::{Store, StoreError};

/// Every load session: no binlog, no checks that a consistent backup does not need,
/// zeros in AUTO_INCREMENT columns kept, times in UTC.
const LOAD_SESSION: &[&str] = &[
    "SET NAMES utf8mb4",
    "SET SESSION sql_log_bin = 0",
    "SET SESSION foreign_key_checks = 0",
    "SET SESSION unique_checks = 0",
    "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'",
    "SET SESSION time_zone = '+00:00'",
];

/// What to do about a damaged object of a backup.
const DAMAGED_FIX: &str = "restore the object from a copy of the store, or load another backup";

/// What a load did.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// Tables whose rows were loaded.
    pub tables: usize,
    /// Rows loaded.
    pub rows: u64,
    /// Row bytes loaded, before compression.
    pub raw_bytes: u64,
    /// How long the whole load took.
    pub took: Duration,
}

/// Why a load failed. The restored server holds what was loaded so far: start again on an
/// empty server.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Mysql(#[from] MysqlError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}", .0.with_fix(DAMAGED_FIX))]
    Damaged(ReadError),
    #[error("object {key} is missing ({DAMAGED_FIX})")]
    Missing { key: String },
    #[error(
        "object {key} does not match the backup's meta: its CRC is {found:08X}, the meta says {expected:08X} ({DAMAGED_FIX})"
    )]
    CrcMismatch {
        key: String,
        expected: u32,
        found: u32,
    },
    #[error(
        "table {table}: the server loaded {loaded} rows of part {part}, the backup holds {expected} (check the server's error log; load into an empty server)"
    )]
    RowCount {
        table: String,
        part: u32,
        expected: u64,
        loaded: u64,
    },
    #[error("load task failed: {reason} (load again into an empty server)")]
    Task { reason: String },
}

impl From<ReadError> for LoadError {
    fn from(err: ReadError) -> LoadError {
        match err {
            ReadError::Store(err) => LoadError::Store(err),
            damaged => LoadError::Damaged(damaged),
        }
    }
}

/// Loads backup `meta` of `source` into the empty server at `restored`, with `workers`
/// connections in parallel (at least 1).
pub async fn load_backup(
    store: Arc<dyn Store>,
    source: &SourceName,
    meta: &MysqlBackupMeta,
    restored: &ConnectOptions,
    workers: usize,
) -> Result<Loaded, LoadError> {
    let span = tracing::info_span!("load", source = %source, id = %meta.id);
    async {
        let started = Instant::now();
        let script = read_schema(store.as_ref(), source, meta).await?;
        let mut main = session(restored).await?;
        run_in_order(&mut main, script.phase(Phase::Create)).await?;
        let mut conns = vec![main];
        for _ in 1..workers.max(1) {
            conns.push(session(restored).await?);
        }
        let (rows, raw_bytes, conns) = load_rows(&store, source, meta, conns).await?;
        tracing::debug!(rows, raw_bytes, "rows loaded; adding the keys");
        let indexes: Vec<String> = script.phase(Phase::Index).map(str::to_owned).collect();
        let mut conns = run_parallel(conns, indexes).await?;
        let Some(mut main) = conns.pop() else {
            return Err(LoadError::Task {
                reason: "no connection left".into(),
            });
        };
        for conn in conns {
            conn.close().await;
        }
        run_in_order(&mut main, script.phase(Phase::Object)).await?;
        run_in_order(&mut main, script.phase(Phase::Account)).await?;
        main.close().await;
        let loaded = Loaded {
            tables: meta.tables.len(),
            rows,
            raw_bytes,
            took: started.elapsed(),
        };
        tracing::info!(
            tables = loaded.tables,
            rows,
            raw_bytes,
            took = ?loaded.took,
            mb_per_s = raw_bytes as f64 / 1e6 / loaded.took.as_secs_f64().max(1e-9),
            "backup loaded"
        );
        Ok(loaded)
    }
    .instrument(span)
    .await
}

/// A load session on the restored server.
async fn session(restored: &ConnectOptions) -> Result<SqlConnection, LoadError> {
    let mut conn = SqlConnection::connect(restored, true).await?;
    conn.execute(LOAD_SESSION).await?;
    Ok(conn)
}

/// The backup's schema script, checked against the meta.
async fn read_schema(
    store: &dyn Store,
    source: &SourceName,
    meta: &MysqlBackupMeta,
) -> Result<SchemaScript, LoadError> {
    let key = ArchiveKey::DumpSchema { id: meta.id }.format(source);
    let content = checked(store, &key, meta.schema.crc).await?;
    SchemaScript::parse(&content).map_err(|e| ReadError::damaged(&key, &e, false).into())
}

/// Reads object `key` and checks its content against `crc` from the meta.
async fn checked(store: &dyn Store, key: &str, crc: u32) -> Result<Vec<u8>, LoadError> {
    let content = read_object(store, key)
        .await?
        .ok_or_else(|| LoadError::Missing { key: key.into() })?;
    let found = crc32fast::hash(&content);
    if found != crc {
        return Err(LoadError::CrcMismatch {
            key: key.into(),
            expected: crc,
            found,
        });
    }
    Ok(content)
}

async fn run_in_order<'a>(
    conn: &mut SqlConnection,
    statements: impl Iterator<Item = &'a str>,
) -> Result<(), LoadError> {
    for sql in statements {
        conn.execute(&[sql]).await?;
    }
    Ok(())
}

/// Runs independent statements over every connection; returns the connections.
async fn run_parallel(
    conns: Vec<SqlConnection>,
    statements: Vec<String>,
) -> Result<Vec<SqlConnection>, LoadError> {
    let queue = Arc::new(Mutex::new(VecDeque::from(statements)));
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in conns {
        let queue = queue.clone();
        tasks.spawn(async move {
            loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(sql) = next else { break };
                conn.execute(&[&sql]).await?;
            }
            Ok::<_, LoadError>(conn)
        });
    }
    join_all(tasks).await
}

/// One part to load, with its table.
struct Job {
    table: Arc<TableMeta>,
    part: PartMeta,
}

/// Loads every part over the connections; returns rows and bytes loaded, and the connections.
async fn load_rows(
    store: &Arc<dyn Store>,
    source: &SourceName,
    meta: &MysqlBackupMeta,
    conns: Vec<SqlConnection>,
) -> Result<(u64, u64, Vec<SqlConnection>), LoadError> {
    let mut jobs: Vec<Job> = Vec::new();
    for table in &meta.tables {
        let table = Arc::new(table.clone());
        for part in &table.parts {
            jobs.push(Job {
                table: table.clone(),
                part: part.clone(),
            });
        }
    }
    // Biggest first, so that the last part to finish is a small one.
    jobs.sort_by_key(|job| std::cmp::Reverse(job.part.raw_bytes));
    let queue = Arc::new(Mutex::new(VecDeque::from(jobs)));
    let mut tasks = tokio::task::JoinSet::new();
    for (n, mut conn) in conns.into_iter().enumerate() {
        let (queue, store, source, id) = (queue.clone(), store.clone(), source.clone(), meta.id);
        let span = tracing::info_span!("load_worker", worker = n);
        tasks.spawn(
            async move {
                let (mut rows, mut bytes) = (0u64, 0u64);
                loop {
                    let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                    let Some(job) = next else { break };
                    let result = load_part(&mut conn, store.as_ref(), &source, id, &job).await;
                    if result.is_err()
                        && let Ok(mut queue) = queue.lock()
                    {
                        queue.clear();
                    }
                    rows += result?;
                    bytes += job.part.raw_bytes;
                }
                Ok::<_, LoadError>((rows, bytes, conn))
            }
            .instrument(span),
        );
    }
    let mut rows = 0;
    let mut bytes = 0;
    let mut conns = Vec::new();
    for (r, b, conn) in join_all(tasks).await? {
        rows += r;
        bytes += b;
        conns.push(conn);
    }
    Ok((rows, bytes, conns))
}

/// Loads one part chunk by chunk; returns its rows.
async fn load_part(
    conn: &mut SqlConnection,
    store: &dyn Store,
    source: &SourceName,
    id: logship_protocol::archive::backup::BackupId,
    job: &Job,
) -> Result<u64, LoadError> {
    let sql = load_statement(&job.table);
    let mut loaded = 0;
    for (chunk, &crc) in (0u32..).zip(&job.part.chunk_crcs) {
        let key = ArchiveKey::DumpRows {
            id,
            table: job.part.number,
            chunk,
        }
        .format(source);
        let content = checked(store, &key, crc).await?;
        loaded += conn.load_local(&sql, &content).await?;
    }
    if loaded != job.part.rows {
        return Err(LoadError::RowCount {
            table: format!("{}.{}", job.table.db, job.table.name),
            part: job.part.number,
            expected: job.part.rows,
            loaded,
        });
    }
    Ok(loaded)
}

/// The `LOAD DATA` statement that reads a chunk of `table` (storage format: row chunks).
fn load_statement(table: &TableMeta) -> String {
    let mut columns = Vec::with_capacity(table.columns.len());
    let mut sets = Vec::new();
    for (i, column) in table.columns.iter().enumerate() {
        if table.bit_columns.contains(column) {
            let var = format!("@logship_bit{i}");
            sets.push(format!("{} = CAST({var} AS UNSIGNED)", quote_ident(column)));
            columns.push(var);
        } else {
            columns.push(quote_ident(column));
        }
    }
    let mut sql = format!(
        "LOAD DATA LOCAL INFILE 'logship-chunk' INTO TABLE {}.{} CHARACTER SET binary \
         FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        quote_ident(&table.db),
        quote_ident(&table.name),
        columns.join(", ")
    );
    if !sets.is_empty() {
        sql.push_str(" SET ");
        sql.push_str(&sets.join(", "));
    }
    sql
}

/// Waits for every task; the first error wins.
async fn join_all<T: 'static>(
    mut tasks: tokio::task::JoinSet<Result<T, LoadError>>,
) -> Result<Vec<T>, LoadError> {
    let mut done = Vec::new();
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(value)) => done.push(value),
            Ok(Err(err)) => {
                first_error.get_or_insert(err);
            }
            Err(err) => {
                first_error.get_or_insert(LoadError::Task {
                    reason: err.to_string(),
                });
            }
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_columns_load_through_variables() {
        let table = TableMeta {
            db: "shop".into(),
            name: "t`x".into(),
            columns: vec!["id".into(), "flags".into()],
            bit_columns: vec!["flags".into()],
            rows: 0,
            raw_bytes: 0,
            stored_bytes: 0,
            parts: Vec::new(),
        };
        assert_eq!(
            load_statement(&table),
            "LOAD DATA LOCAL INFILE 'logship-chunk' INTO TABLE `shop`.`t``x` CHARACTER SET \
             binary FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' \
             (`id`, @logship_bit1) SET `flags` = CAST(@logship_bit1 AS UNSIGNED)"
        );
    }
}
