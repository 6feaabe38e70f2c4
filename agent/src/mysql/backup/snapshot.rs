//! Lining the worker connections up with one point of the binlog.
//!
//! MariaDB 10.4.1 and later: `BACKUP STAGE START` and `BACKUP STAGE BLOCK_DDL` on the control
//! connection while the schema is read (commits go on), then `BACKUP STAGE BLOCK_COMMIT`,
//! every worker `START TRANSACTION WITH CONSISTENT SNAPSHOT`, the binlog position and GTID
//! position read, and `BACKUP STAGE END`: commits wait only for the snapshots and the position.
//! Elsewhere `FLUSH TABLES WITH READ LOCK` holds both, from the schema to `UNLOCK TABLES`.

use std::time::{Duration, Instant};

use jiff::Timestamp;

use logship_protocol::mysql::BinlogPos;

use super::BackupError;
use crate::mysql::conn::{MysqlConnection, SqlConnection};

/// The session every worker reads rows in: bytes exactly as stored, times in UTC, and
/// patience with a reader that waits for uploads.
const WORKER_SESSION: &[&str] = &[
    "SET NAMES binary",
    "SET SESSION time_zone = '+00:00'",
    "SET SESSION net_write_timeout = 3600",
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
];

/// Where the workers' snapshots line up with the binlog.
#[derive(Debug, Clone)]
pub(super) struct Snapshot {
    /// The binlog position: every transaction committed before it is visible, none after.
    pub position: BinlogPos,
    /// The server's GTID position there.
    pub gtid_position: String,
    /// This process's clock just after the position was read, commits still blocked.
    pub time: Timestamp,
    /// How long commits were blocked.
    pub commit_block: Duration,
}

/// The lock that keeps DDL out while the schema is read.
pub(super) struct SchemaLock {
    backup_stage: bool,
    /// When commits started to wait (FTWRL blocks them from the start).
    commits_blocked: Option<Instant>,
}

/// Prepares the workers' sessions and takes the lock under which the schema is read.
pub(super) async fn lock_schema(
    control: &mut MysqlConnection,
    workers: &mut [SqlConnection],
) -> Result<SchemaLock, BackupError> {
    for worker in workers.iter_mut() {
        worker.execute(WORKER_SESSION).await?;
    }
    let info = control.info();
    let backup_stage =
        info.is_mariadb && crate::mysql::conn::version_at_least(&info.version, (10, 4, 1));
    if backup_stage {
        control.query("BACKUP STAGE START").await?;
        control.query("BACKUP STAGE BLOCK_DDL").await?;
        return Ok(SchemaLock {
            backup_stage,
            commits_blocked: None,
        });
    }
    control.query("FLUSH TABLES WITH READ LOCK").await?;
    Ok(SchemaLock {
        backup_stage,
        commits_blocked: Some(Instant::now()),
    })
}

impl SchemaLock {
    /// Blocks commits, starts every worker's snapshot, reads the position and releases the
    /// server.
    pub(super) async fn line_up(
        self,
        control: &mut MysqlConnection,
        workers: &mut [SqlConnection],
    ) -> Result<Snapshot, BackupError> {
        let blocked = match self.commits_blocked {
            Some(since) => since,
            None => {
                control.query("BACKUP STAGE BLOCK_COMMIT").await?;
                Instant::now()
            }
        };
        for worker in workers.iter_mut() {
            worker
                .execute(&["START TRANSACTION WITH CONSISTENT SNAPSHOT"])
                .await?;
        }
        let info = control.refresh_info().await?;
        let (position, gtid_position) = (info.current.clone(), info.gtid_position.clone());
        let time = Timestamp::now();
        control
            .query(if self.backup_stage {
                "BACKUP STAGE END"
            } else {
                "UNLOCK TABLES"
            })
            .await?;
        let commit_block = blocked.elapsed();
        tracing::info!(%position, gtid = %gtid_position, blocked = ?commit_block, "snapshot lined up");
        Ok(Snapshot {
            position,
            gtid_position,
            time,
            commit_block,
        })
    }
}
