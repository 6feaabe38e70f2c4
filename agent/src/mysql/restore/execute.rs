//! A MySQL/MariaDB restore, end to end: plan before anything is written, then load the
//! backup into the destination server, replay the archived binlog leg by leg up to the
//! stop point with the server's own replication applier, and hand the server over.
//!
//! Whatever fails after the destination was touched is undone: a new server is stopped
//! and its directory removed; on an existing server every database is dropped again (it
//! was checked to hold none before).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use logship_protocol::archive::SourceIdentity;
use logship_protocol::archive::key::SourceName;
use logship_protocol::mysql::backup::MysqlBackupMeta;
use logship_protocol::mysql::key::ServerNo;
use rand::Rng;

use crate::identity::read_identity;
use crate::mysql::backup::list_backups;
use crate::mysql::catalog::BinlogCatalog;
use crate::mysql::conn::{ConnectOptions, MysqlConnection};
use crate::mysql::history::ServerHistory;
use crate::mysql::load::{Loaded, load_backup};
use crate::mysql::replay::{ReplayOptions, Replayed, replay};
use crate::mysql::restore::into::{
    Destination, Handover, NewServer, check_empty_server, destination, user_databases,
};
use crate::mysql::restore::plan::{Snapshot, plan};
use crate::mysql::restore::route::{Stop, find_stop, route};
use crate::mysql::restore::target::{BinlogTarget, StopPoint};
use crate::mysql::summary::load_binlog_summary;
use crate::store::Store;

/// The port a new server listens on when `--port` is not given (DESIGN.md §2).
pub const DEFAULT_PORT: u16 = 3306;

/// Connections that load a backup in parallel: one per core of a small machine.
pub const DEFAULT_WORKERS: usize = 2;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct MysqlRestoreRequest {
    /// `--to`: a directory for a new server, or the `mysql://` URL of an empty one.
    pub to: PathBuf,
    /// Where the restore stops.
    pub target: BinlogTarget,
    /// `--port` of a new server.
    pub port: Option<u16>,
    /// `--force`: empty a non-empty directory first.
    pub force: bool,
    /// `--start`: leave a new server running.
    pub start: bool,
    /// Connections that load the backup in parallel.
    pub workers: usize,
}

/// What a restore did.
#[derive(Debug)]
pub struct MysqlRestored {
    /// The backup loaded.
    pub backup: MysqlBackupMeta,
    /// The load.
    pub loaded: Loaded,
    /// The last transaction replayed, and its server; `None` when none after the
    /// snapshot was wanted.
    pub stop: Option<(ServerNo, StopPoint)>,
    /// Each leg's replay.
    pub replayed: Vec<Replayed>,
    /// The restored server's `gtid_slave_pos` at the end.
    pub gtid_pos: String,
    /// Where it went.
    pub into: Restored,
}

/// Where a restore went.
#[derive(Debug)]
pub enum Restored {
    /// A new server, handed over.
    NewServer(Handover),
    /// An existing server.
    Server { addr: String },
}

impl MysqlRestored {
    /// What the restore did, as lines for the user.
    pub fn report(&self) -> Vec<String> {
        let backup = &self.backup;
        let into = match &self.into {
            Restored::NewServer(handover) => format!("a new server in {}", handover.dir.display()),
            Restored::Server { addr } => format!("the server at {addr}"),
        };
        let mut lines = vec![format!(
            "restored backup {} (snapshot at {}, GTID {}) into {into}: {} tables, {} rows in {:.1} s",
            backup.id,
            backup.position,
            display_gtid(&backup.gtid_position),
            self.loaded.tables,
            self.loaded.rows,
            self.loaded.took.as_secs_f64()
        )];
        lines.push(match &self.stop {
            Some((_, stop)) => format!(
                "replayed the archived binlog to {}, just past the transaction {} committed at {} ({:.1} s); GTID position {}",
                stop.pos,
                stop.gtid.as_deref().unwrap_or("without a GTID"),
                crate::timefmt::format_time(stop.commit_time),
                self.replayed.iter().map(|r| r.elapsed.as_secs_f64()).sum::<f64>(),
                display_gtid(&self.gtid_pos)
            ),
            None => format!(
                "reached the backup's snapshot at {} (no transaction after it was wanted)",
                backup.position
            ),
        });
        if let Restored::NewServer(handover) = &self.into {
            let socket = handover.dir.join("mysqld.sock");
            lines.push(if handover.running {
                format!(
                    "the server is running on port {} (root logs in as the OS user root: mariadb -S {}); stop it with: mariadb-admin -S {} shutdown",
                    handover.port,
                    socket.display(),
                    socket.display()
                )
            } else {
                format!("start it with: {}", handover.start_command)
            });
        }
        lines
    }
}

fn display_gtid(gtid: &str) -> &str {
    if gtid.is_empty() { "none" } else { gtid }
}

/// Restores `source` as `request` asks.
pub async fn run(
    store: Arc<dyn Store>,
    source: &SourceName,
    request: &MysqlRestoreRequest,
) -> anyhow::Result<MysqlRestored> {
    let (first_server_id, domain_id) = match read_identity(store.as_ref(), source).await? {
        Some(SourceIdentity::Mariadb {
            domain_id,
            server_id,
        }) => (server_id, domain_id),
        Some(SourceIdentity::Mysql { .. }) => bail!(
            "source \"{source}\" is a MySQL server: this version restores MariaDB sources only"
        ),
        Some(_) => bail!("source \"{source}\" is not a MySQL/MariaDB source"),
        None => bail!("no archive for source \"{source}\" yet: start logship run first"),
    };
    let identity = SourceIdentity::Mariadb {
        domain_id,
        server_id: first_server_id,
    };
    let backups = list_backups(store.as_ref(), source).await?;
    let summary = load_binlog_summary(store.as_ref(), source, identity).await?;
    let snapshots: Vec<Snapshot> = backups
        .iter()
        .map(Snapshot::of)
        .collect::<anyhow::Result<_>>()?;
    let chosen = plan(&snapshots, &summary, &request.target)?.id;
    let Some(backup) = backups.into_iter().find(|b| b.id == chosen) else {
        bail!("backup {chosen} vanished while the restore was planned (run the restore again)");
    };
    let catalog = BinlogCatalog::load(store.as_ref(), source).await?;
    let history = ServerHistory::load(store.as_ref(), source, first_server_id).await?;
    let start = Snapshot::of(&backup)?;
    let legs = route(&history, &catalog, &start);
    let stop = find_stop(store.as_ref(), source, &catalog, legs, &request.target).await?;
    tracing::info!(backup = %backup.id, stop = ?stop.point, "restore planned");

    match destination(&request.to, request.force)? {
        Destination::Dir(checked) => {
            let port = request.port.unwrap_or(DEFAULT_PORT);
            let server = NewServer::create(checked, port, new_server_id(first_server_id)).await?;
            let outcome = fill(
                &store,
                source,
                &backup,
                &stop,
                &server.connect_options()?,
                request,
                domain_id,
                &history,
            )
            .await;
            match outcome {
                Ok((loaded, replayed, gtid_pos)) => match server.hand_over(request.start).await {
                    Ok(handover) => Ok(MysqlRestored {
                        backup,
                        loaded,
                        stop: stop.point,
                        replayed,
                        gtid_pos,
                        into: Restored::NewServer(handover),
                    }),
                    Err(err) => Err(err),
                },
                Err(err) => {
                    server.discard().await;
                    Err(err)
                }
            }
        }
        Destination::Server(options) => {
            let mut conn = MysqlConnection::connect(&options).await?;
            check_empty_server(&mut conn, first_server_id).await?;
            let addr = conn.addr().to_owned();
            let outcome = fill(
                &store, source, &backup, &stop, &options, request, domain_id, &history,
            )
            .await;
            match outcome {
                Ok((loaded, replayed, gtid_pos)) => Ok(MysqlRestored {
                    backup,
                    loaded,
                    stop: stop.point,
                    replayed,
                    gtid_pos,
                    into: Restored::Server { addr },
                }),
                Err(err) => {
                    if let Err(cleanup) = drop_databases(&mut conn).await {
                        tracing::error!(err = %format!("{cleanup:#}"), "cannot drop the databases the restore created; drop them by hand");
                    }
                    Err(err)
                }
            }
        }
    }
}

/// Loads the backup, then replays each leg; returns the restored server's GTID position.
#[allow(clippy::too_many_arguments)]
async fn fill(
    store: &Arc<dyn Store>,
    source: &SourceName,
    backup: &MysqlBackupMeta,
    stop: &Stop,
    options: &ConnectOptions,
    request: &MysqlRestoreRequest,
    domain_id: u32,
    history: &ServerHistory,
) -> anyhow::Result<(Loaded, Vec<Replayed>, String)> {
    let loaded = load_backup(store.clone(), source, backup, options, request.workers).await?;
    tracing::info!(
        tables = loaded.tables,
        rows = loaded.rows,
        took_ms = loaded.took.as_millis() as u64,
        "backup loaded"
    );
    let mut conn = MysqlConnection::connect(options).await?;
    let mut replayed = Vec::new();
    if stop.point.is_some() {
        for leg in &stop.legs {
            let Some(to) = &leg.to else { continue };
            let options = ReplayOptions::new(history.server_id(leg.server), domain_id);
            replayed.push(
                replay(
                    store.clone(),
                    source,
                    leg.server,
                    &leg.from,
                    to,
                    &mut conn,
                    &options,
                )
                .await?,
            );
        }
    }
    let gtid_pos = conn
        .query("SELECT @@GLOBAL.gtid_slave_pos")
        .await?
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next().flatten())
        .unwrap_or_default();
    Ok((loaded, replayed, gtid_pos))
}

/// A `server_id` for a new server: random and high, so that it is neither the
/// original's nor likely to be any other server's of its replication topology.
fn new_server_id(original: u32) -> u32 {
    loop {
        let id = rand::rng().random_range(1 << 30..u32::MAX);
        if id != original {
            return id;
        }
    }
}

/// Drops every database of an existing server that was empty before the restore.
async fn drop_databases(conn: &mut MysqlConnection) -> anyhow::Result<()> {
    for db in user_databases(conn).await? {
        conn.query(&format!("DROP DATABASE `{}`", db.replace('`', "``")))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_server_ids_are_never_the_originals_nor_zero() {
        for _ in 0..1000 {
            let id = new_server_id(1 << 30);
            assert!(id > 1 << 30);
        }
    }
}
