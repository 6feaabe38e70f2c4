//! A MariaDB server on this machine, driven through its own tools (`mariadb-install-db`,
//! `mariadbd` and the `mariadb` client): the quickstart's throwaway database, and the
//! server a restore initializes in a directory.
//!
//! A server directory holds `data/` (the data directory, with the binlog), `my.cnf` (all
//! of the server's settings: `mariadbd --defaults-file=DIR/my.cnf` starts it), `server.log`,
//! the socket and the pid file. When logship runs as root, the server runs as the `mysql`
//! OS user, which owns the directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::localserver::{give_to_os_user, is_root};

/// The OS user that owns server files when logship runs as root.
const SERVER_USER: &str = "mysql";
/// Where Debian installs the server when it is not on `PATH`.
const DEBIAN_MARIADBD: &str = "/usr/sbin/mariadbd";
/// The binlog files' base name.
const BINLOG_BASENAME: &str = "binlog";
/// How long the server may take to accept connections, or to stop.
const SERVER_TIMEOUT: Duration = Duration::from_secs(60);

/// A running MariaDB in a server directory.
pub struct LocalMariaDb {
    dir: PathBuf,
    port: u16,
    server: Child,
}

/// How a server directory is set up.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// `server_id`; never 0.
    pub server_id: u32,
}

impl LocalMariaDb {
    /// The server binary, when MariaDB is installed.
    pub fn find() -> Option<PathBuf> {
        let on_path = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("mariadbd"))
                .find(|candidate| candidate.exists())
        });
        on_path.or_else(|| Some(PathBuf::from(DEBIAN_MARIADBD)).filter(|p| p.exists()))
    }

    /// Creates a server directory in `dir` with the binlog on, and starts the server on
    /// 127.0.0.1:`port`; root logs in over TCP without a password.
    pub async fn start(mariadbd: &Path, dir: &Path, port: u16) -> anyhow::Result<LocalMariaDb> {
        let settings = ServerSettings { port, server_id: 1 };
        LocalMariaDb::create(dir, settings).await?;
        LocalMariaDb::start_existing(mariadbd, dir, port, &[]).await
    }

    /// Creates a server directory in `dir` (which must exist): the data directory with
    /// the system tables, where root logs in over TCP without a password, and `my.cnf`.
    pub async fn create(dir: &Path, settings: ServerSettings) -> anyhow::Result<()> {
        // The server's OS user creates the data directory inside.
        give_to_os_user(dir, SERVER_USER).await?;
        let data = dir.join("data");
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if is_root() {
            install.arg(format!("--user={SERVER_USER}"));
        }
        let installed = install
            .output()
            .await
            .context("cannot run mariadb-install-db (install mariadb-server)")?;
        if !installed.status.success() {
            bail!(
                "mariadb-install-db failed: {}",
                last_line(&installed.stderr)
            );
        }
        let cnf = dir.join("my.cnf");
        tokio::fs::write(&cnf, my_cnf(dir, &data, settings))
            .await
            .with_context(|| format!("cannot write {}", cnf.display()))?;
        give_to_os_user(dir, SERVER_USER).await
    }

    /// Starts the server of the server directory `dir` on 127.0.0.1:`port` (the port in
    /// its `my.cnf`), with `extra` settings on the command line for this run only.
    pub async fn start_existing(
        mariadbd: &Path,
        dir: &Path,
        port: u16,
        extra: &[&str],
    ) -> anyhow::Result<LocalMariaDb> {
        let server = Command::new(mariadbd)
            .arg(format!("--defaults-file={}", dir.join("my.cnf").display()))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", mariadbd.display()))?;
        let mut db = LocalMariaDb {
            dir: dir.to_owned(),
            port,
            server,
        };
        db.wait_ready().await?;
        Ok(db)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if self.query("SELECT 1").await.is_ok() {
                return Ok(());
            }
            if let Some(status) = self.server.try_wait()? {
                bail!(
                    "the MariaDB server in {} exited ({status}) at start; see {}",
                    self.dir.display(),
                    self.dir.join("server.log").display()
                );
            }
            if started.elapsed() > SERVER_TIMEOUT {
                bail!(
                    "the MariaDB server in {} did not accept connections within {} s; see {}",
                    self.dir.display(),
                    SERVER_TIMEOUT.as_secs(),
                    self.dir.join("server.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `sql` with the `mariadb` client as root; returns its tab-separated output.
    pub async fn query(&self, sql: &str) -> anyhow::Result<String> {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-h127.0.0.1", "-uroot", "-N", "-B"])
            .arg(format!("-P{}", self.port))
            .args(["-e", sql])
            .output()
            .await
            .context("cannot run the mariadb client (install mariadb-client)")?;
        if !out.status.success() {
            bail!(
                "the MariaDB server in {} refused {sql:?}: {}",
                self.dir.display(),
                last_line(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The server's current binlog file and position.
    pub async fn binlog_position(&self) -> anyhow::Result<(String, u64)> {
        let status = self.query("SHOW MASTER STATUS").await?;
        let mut fields = status.split('\t');
        match (fields.next(), fields.next().and_then(|p| p.parse().ok())) {
            (Some(file), Some(pos)) => Ok((file.to_owned(), pos)),
            _ => bail!("SHOW MASTER STATUS printed {status:?}, not a binlog position"),
        }
    }

    /// The URL a replica connects with.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// The server's own copy of a binlog file.
    pub fn binlog_path(&self, file: &str) -> PathBuf {
        self.dir.join("data").join(file)
    }

    /// Lets the server run on after this process exits.
    pub fn leave_running(self) {
        // Dropping the child handle would kill the server; forgetting it only leaks the
        // handle, and the server's own process lives on.
        std::mem::forget(self);
    }

    /// Shuts the server down cleanly and waits for it to exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let asked = self.query("SHUTDOWN").await;
        match tokio::time::timeout(SERVER_TIMEOUT, self.server.wait()).await {
            Ok(Ok(_)) => Ok(()),
            _ => {
                self.server.kill().await.ok();
                asked?;
                bail!(
                    "the MariaDB server in {} did not stop within {} s; it was killed",
                    self.dir.display(),
                    SERVER_TIMEOUT.as_secs()
                )
            }
        }
    }
}

fn my_cnf(dir: &Path, data: &Path, settings: ServerSettings) -> String {
    let ServerSettings { port, server_id } = settings;
    let user = if is_root() {
        format!("user={SERVER_USER}\n")
    } else {
        String::new()
    };
    format!(
        "[mysqld]\ndatadir={data}\nport={port}\nbind-address=127.0.0.1\nsocket={dir}/mysqld.sock\n\
         pid-file={dir}/mysqld.pid\nlog-error={dir}/server.log\nlog-bin={data}/{BINLOG_BASENAME}\n\
         server-id={server_id}\nbinlog_format=ROW\n{user}",
        data = data.display(),
        dir = dir.display(),
    )
}

fn last_line(output: &[u8]) -> String {
    String::from_utf8_lossy(output)
        .trim()
        .lines()
        .last()
        .unwrap_or("no output")
        .to_owned()
}
