//! A PostgreSQL server on this machine, driven through its own tools
//! (`initdb`, `pg_ctl`): the quickstart's throwaway database.
//!
//! PostgreSQL refuses to run as root, so when logship runs as root every server
//! tool runs as the `postgres` OS user through `runuser`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Output;

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::localserver::{give_to_os_user, is_root};

/// Where Debian and Ubuntu install PostgreSQL 15's server tools.
const DEFAULT_BINDIR: &str = "/usr/lib/postgresql/15/bin";

/// The OS user that owns server files when logship runs as root.
const SERVER_USER: &str = "postgres";

/// A PostgreSQL data directory and the tools that run it.
pub struct LocalPostgres {
    bindir: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    port: u16,
}

impl LocalPostgres {
    /// The server tools: `LOGSHIP_PG_BINDIR`, else `pg_config --bindir`, else the Debian path.
    pub fn find_bindir() -> anyhow::Result<PathBuf> {
        let candidates = std::env::var_os("LOGSHIP_PG_BINDIR")
            .map(PathBuf::from)
            .into_iter()
            .chain(
                std::process::Command::new("pg_config")
                    .arg("--bindir")
                    .output()
                    .ok()
                    .filter(|o| o.status.success())
                    .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())),
            )
            .chain([PathBuf::from(DEFAULT_BINDIR)]);
        for dir in candidates {
            if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
                return Ok(dir);
            }
        }
        bail!(
            "PostgreSQL server tools (initdb, pg_ctl) not found (install postgresql-15, or set LOGSHIP_PG_BINDIR to their directory)"
        )
    }

    /// Creates a cluster in `dir/data` that listens on 127.0.0.1:`port` with
    /// trust auth and everything streaming replication needs.
    pub async fn init(dir: &Path, port: u16) -> anyhow::Result<LocalPostgres> {
        let bindir = LocalPostgres::find_bindir()?;
        give_to_server_user(dir).await?;
        let pg = LocalPostgres {
            bindir,
            data: dir.join("data"),
            socket_dir: dir.to_path_buf(),
            port,
        };
        let initdb = pg.bindir.join("initdb");
        pg.run_tool(
            &initdb,
            &[
                OsStr::new("-D"),
                pg.data.as_os_str(),
                OsStr::new("-A"),
                OsStr::new("trust"),
                OsStr::new("-U"),
                OsStr::new("postgres"),
                OsStr::new("--no-sync"),
            ],
        )
        .await?;
        let conf = format!(
            "\n# added by logship quickstart\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = replica\nmax_wal_senders = 10\nmax_replication_slots = 10\n",
            pg.socket_dir.display()
        );
        append(&pg.data.join("postgresql.conf"), &conf).await?;
        Ok(pg)
    }

    /// Starts the server and waits until it accepts connections.
    pub async fn start(&self) -> anyhow::Result<()> {
        let log = self.socket_dir.join("postgres.log");
        self.run_tool(
            &self.bindir.join("pg_ctl"),
            &[
                OsStr::new("-D"),
                self.data.as_os_str(),
                OsStr::new("-l"),
                log.as_os_str(),
                OsStr::new("-w"),
                OsStr::new("start"),
            ],
        )
        .await
        .with_context(|| format!("see the server log {}", log.display()))?;
        Ok(())
    }

    /// An existing data directory `data` (such as a restored one), whose server is to
    /// listen on `port` with its Unix socket in `socket_dir`.
    pub fn existing(data: &Path, port: u16, socket_dir: &Path) -> anyhow::Result<LocalPostgres> {
        Ok(LocalPostgres {
            bindir: LocalPostgres::find_bindir()?,
            data: data.to_path_buf(),
            socket_dir: socket_dir.to_path_buf(),
            port,
        })
    }

    /// Starts the server without waiting for it, logging to `log`, with `settings` given
    /// as `-c name=value` for this run only (they override the configuration files).
    pub async fn spawn(&self, log: &Path, settings: &[(&str, String)]) -> anyhow::Result<()> {
        let mut options = format!(
            "-p {} -c unix_socket_directories={}",
            self.port,
            shell_quote(&self.socket_dir.display().to_string())
        );
        for (name, value) in settings {
            options.push_str(&format!(" -c {name}={}", shell_quote(value)));
        }
        self.run_tool(
            &self.bindir.join("pg_ctl"),
            &[
                OsStr::new("-D"),
                self.data.as_os_str(),
                OsStr::new("-l"),
                log.as_os_str(),
                OsStr::new("-o"),
                OsStr::new(&options),
                OsStr::new("-W"),
                OsStr::new("start"),
            ],
        )
        .await
        .with_context(|| format!("see the server log {}", log.display()))?;
        Ok(())
    }

    /// Whether a server is running on the data directory (`pg_ctl status`).
    pub async fn is_running(&self) -> anyhow::Result<bool> {
        let pg_ctl = self.bindir.join("pg_ctl");
        let status = self
            .tool_command(&pg_ctl)
            .args([
                OsStr::new("-D"),
                self.data.as_os_str(),
                OsStr::new("status"),
            ])
            .output()
            .await
            .with_context(|| format!("cannot run {}", pg_ctl.display()))?
            .status;
        Ok(status.success())
    }

    /// Runs one SQL statement with `psql` over the Unix socket, as `PGUSER` or else the
    /// `postgres` role; returns its unaligned, tuples-only output.
    pub async fn query(&self, sql: &str) -> anyhow::Result<String> {
        let user = std::env::var("PGUSER").unwrap_or_else(|_| SERVER_USER.to_owned());
        let port = self.port.to_string();
        let output = self
            .run_tool(
                &self.bindir.join("psql"),
                &[
                    OsStr::new("-X"),
                    OsStr::new("-A"),
                    OsStr::new("-t"),
                    OsStr::new("-q"),
                    OsStr::new("-h"),
                    self.socket_dir.as_os_str(),
                    OsStr::new("-p"),
                    OsStr::new(&port),
                    OsStr::new("-U"),
                    OsStr::new(&user),
                    OsStr::new("-d"),
                    OsStr::new("postgres"),
                    OsStr::new("-c"),
                    OsStr::new(sql),
                ],
            )
            .await?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The `pg_ctl` command line a person runs for `action` (such as `stop`) on this server.
    pub fn pg_ctl_command(&self, action: &str) -> String {
        let pg_ctl = shell_quote(&self.bindir.join("pg_ctl").display().to_string());
        let data = shell_quote(&self.data.display().to_string());
        let prefix = if is_root() {
            format!("runuser -u {SERVER_USER} -- ")
        } else {
            String::new()
        };
        format!("{prefix}{pg_ctl} -D {data} {action}")
    }

    /// Stops the server: `fast` is a clean shutdown, otherwise `immediate` (a crash).
    pub async fn stop(&self, fast: bool) -> anyhow::Result<()> {
        let mode = if fast { "fast" } else { "immediate" };
        self.run_tool(
            &self.bindir.join("pg_ctl"),
            &[
                OsStr::new("-D"),
                self.data.as_os_str(),
                OsStr::new("-m"),
                OsStr::new(mode),
                OsStr::new("-w"),
                OsStr::new("stop"),
            ],
        )
        .await?;
        Ok(())
    }

    /// The superuser's URL over TCP.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// `tool`, run as the server user when logship runs as root.
    fn tool_command(&self, tool: &Path) -> Command {
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", SERVER_USER, "--"]).arg(tool);
            c
        } else {
            Command::new(tool)
        };
        command.current_dir(&self.socket_dir);
        command
    }

    async fn run_tool(&self, tool: &Path, args: &[&OsStr]) -> anyhow::Result<Output> {
        let output = self
            .tool_command(tool)
            .args(args)
            .output()
            .await
            .with_context(|| format!("cannot run {}", tool.display()))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            bail!(
                "{} failed: {}",
                tool.file_name().map_or_else(
                    || tool.display().to_string(),
                    |n| n.to_string_lossy().into_owned()
                ),
                stderr.trim().lines().last().unwrap_or("no output")
            );
        }
        Ok(output)
    }
}

/// Quotes `word` for `/bin/sh`, leaving words of only safe characters as they are.
pub fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Gives `dir` and everything in it to the server's OS user, when logship runs as root
/// (PostgreSQL refuses a data directory it does not own).
pub async fn give_to_server_user(dir: &Path) -> anyhow::Result<()> {
    give_to_os_user(dir, SERVER_USER).await
}

async fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.write_all(text.as_bytes()).await?;
    Ok(())
}
