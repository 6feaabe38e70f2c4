//! The server a MySQL/MariaDB restore loads into: a new one that logship initializes in a
//! directory, or an existing empty one given by its `mysql://` URL. Each is checked before
//! anything is written and cleaned up again when the restore fails: the new directory is
//! removed, and on an existing server the databases the restore created are dropped.
//!
//! A new server runs with settings that make loading fast and are not kept
//! ([`LOADING_SETTINGS`]: no doublewrite, no flush at each commit), on a free
//! port during the restore; [`NewServer::hand_over`] restarts it with the settings of its
//! `my.cnf` alone and locks root to the `unix_socket` plugin, as Debian's packages do.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::localserver::free_port;
use crate::mysql::conn::{ConnectOptions, MysqlConnection};
use crate::mysql::localdb::{LocalMariaDb, ServerSettings};
use crate::restore::dir::{CheckedDir, TargetDir, check_data_dir};

/// Settings for the restore only, on the command line of the loading server. The binlog
/// stays on (the replay's connection checks it) but is neither written by the loading
/// sessions nor by the replication applier, and never synced.
pub const LOADING_SETTINGS: &[&str] = &[
    "--sync-binlog=0",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--skip-slave-start",
];

/// The databases every server has, which a restore neither checks nor writes.
pub const SYSTEM_DATABASES: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// Where a restore goes, as `--to` says.
#[derive(Debug)]
pub enum Destination {
    /// A new server in this directory, checked.
    Dir(CheckedDir),
    /// An existing server.
    Server(ConnectOptions),
}

/// Reads `--to`: a `mysql://` URL (its password from the URL or `MYSQL_PWD`), else a
/// directory that must not exist or be empty (unless `force`).
pub fn destination(to: &Path, force: bool) -> anyhow::Result<Destination> {
    let text = to.to_string_lossy();
    if text.starts_with("mysql://") {
        let password = std::env::var("MYSQL_PWD").ok();
        return Ok(Destination::Server(ConnectOptions::from_url(
            &text, password,
        )?));
    }
    Ok(Destination::Dir(check_data_dir(to, force)?))
}

/// A server that logship initialized in a directory and runs for the restore.
pub struct NewServer {
    dir: TargetDir,
    mariadbd: PathBuf,
    port: u16,
    loading_port: u16,
    db: Option<LocalMariaDb>,
}

impl NewServer {
    /// Creates the directory and a server in it that will listen on `port`, and starts
    /// it on a free port with [`LOADING_SETTINGS`].
    pub async fn create(
        checked: CheckedDir,
        port: u16,
        server_id: u32,
    ) -> anyhow::Result<NewServer> {
        let Some(mariadbd) = LocalMariaDb::find() else {
            bail!(
                "cannot find mariadbd to initialize the restored server (install mariadb-server, or restore into an existing server with --to mysql://…)"
            );
        };
        let dir = checked.prepare()?;
        let mut server = NewServer {
            dir,
            mariadbd,
            port,
            loading_port: free_port()?,
            db: None,
        };
        let started = server.start_loading(server_id).await;
        if let Err(err) = started {
            server.discard().await;
            return Err(err);
        }
        Ok(server)
    }

    async fn start_loading(&mut self, server_id: u32) -> anyhow::Result<()> {
        let settings = ServerSettings {
            port: self.port,
            server_id,
        };
        LocalMariaDb::create(self.dir.path(), settings).await?;
        let port = format!("--port={}", self.loading_port);
        let mut extra = vec![port.as_str()];
        extra.extend_from_slice(LOADING_SETTINGS);
        let db = LocalMariaDb::start_existing(
            &self.mariadbd,
            self.dir.path(),
            self.loading_port,
            &extra,
        )
        .await?;
        self.db = Some(db);
        Ok(())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// How the restore logs in while it loads: root over TCP, without a password.
    pub fn connect_options(&self) -> anyhow::Result<ConnectOptions> {
        Ok(ConnectOptions::from_url(
            &format!("mysql://root@127.0.0.1:{}", self.loading_port),
            None,
        )?)
    }

    /// Restarts the server with its own settings only, locks root to `unix_socket`, and
    /// either leaves it running on its port (`start`) or stops it.
    pub async fn hand_over(mut self, start: bool) -> anyhow::Result<Handover> {
        if let Some(db) = self.db.take() {
            db.stop().await?;
        }
        let dir = self.dir.path().to_owned();
        let db = LocalMariaDb::start_existing(&self.mariadbd, &dir, self.port, &[])
            .await
            .with_context(|| format!("cannot start the restored server on port {}", self.port))?;
        db.query("ALTER USER root@localhost IDENTIFIED VIA unix_socket")
            .await?;
        let start_command = format!(
            "{} --defaults-file={}",
            self.mariadbd.display(),
            dir.join("my.cnf").display()
        );
        if start {
            db.leave_running();
        } else {
            db.stop().await?;
        }
        Ok(Handover {
            dir,
            port: self.port,
            start_command,
            running: start,
        })
    }

    /// Stops the server and removes the directory: the restore failed.
    pub async fn discard(mut self) {
        if let Some(db) = self.db.take() {
            let _ = db.stop().await;
        }
        self.dir.discard();
    }
}

/// A restored server, handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// Its directory.
    pub dir: PathBuf,
    /// The port it listens on.
    pub port: u16,
    /// The command that starts it.
    pub start_command: String,
    /// Whether it is running.
    pub running: bool,
}

/// The databases of a server other than [`SYSTEM_DATABASES`], by name.
pub async fn user_databases(conn: &mut MysqlConnection) -> anyhow::Result<Vec<String>> {
    let listed = SYSTEM_DATABASES
        .iter()
        .map(|db| format!("'{db}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = conn
        .query(&format!(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name NOT IN ({listed}) ORDER BY 1"
        ))
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .collect())
}

/// Refuses a server that holds any database of its own, or whose `server_id` is the
/// original's (its replication applier would skip the original's transactions).
pub async fn check_empty_server(
    conn: &mut MysqlConnection,
    original_server_id: u32,
) -> anyhow::Result<()> {
    let databases = user_databases(conn).await?;
    if !databases.is_empty() {
        bail!(
            "the server at {} is not empty: it holds the database{} {} (restore into an empty server, or into a new directory with --to DIR)",
            conn.addr(),
            if databases.len() == 1 { "" } else { "s" },
            databases.join(", ")
        );
    }
    let server_id = conn.query("SELECT @@server_id").await?;
    if server_id
        .first()
        .and_then(|row| row.first())
        .cloned()
        .flatten()
        == Some(original_server_id.to_string())
    {
        bail!(
            "the server at {} has server_id {original_server_id}, the original server's, so its replication applier would skip the original's transactions (set server_id to another value on it)",
            conn.addr()
        );
    }
    Ok(())
}
