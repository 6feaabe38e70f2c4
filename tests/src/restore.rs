//! Point-in-time restore scenarios: a server streamed by `logship run` with a base backup
//! taken, `logship restore` into a new directory, and the restored server it leaves running.

// Test harness: a panic here is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use logship_protocol::archive::key::SourceName;
use logship_protocol::pg::Lsn;
use tempfile::TempDir;

use crate::agent::{Agent, last_stderr_line, logship};
use crate::archive::{TestStore, wait_durable, wait_for_backups};
use crate::pg::PgServer;
use crate::util::{free_port, is_root, temp_dir};

/// The source name of an inline `--postgres` source.
pub fn default_source() -> SourceName {
    SourceName::new("default").unwrap()
}

/// A server archived by a running `logship run`, with the base backup it schedules as it
/// starts already taken.
pub struct Archiving {
    /// The `logship run` daemon.
    pub agent: Agent,
    /// Keeps the agent's log until the scenario ends.
    _logs: TempDir,
}

impl Archiving {
    /// Starts `logship run` on `pg` (extra `env` for its source settings), waits until the
    /// store holds `pg`'s current WAL, and takes a base backup with `logship backup`.
    pub async fn start(pg: &PgServer, store: &TestStore, env: &[(&str, &str)]) -> Archiving {
        let archiving = Archiving::stream(pg, store, env).await;
        archiving.backup(pg, store);
        archiving
    }

    /// Starts `logship run` on `pg` and waits until the store holds `pg`'s current WAL and
    /// the agent's first scheduled backup. Waiting for that backup keeps it from sharing a
    /// checkpoint with the scenario's own (on a standby, both start at its last restartpoint).
    pub async fn stream(pg: &PgServer, store: &TestStore, env: &[(&str, &str)]) -> Archiving {
        let logs = temp_dir("agent-logs");
        let mut all_env = store.env();
        all_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let agent = Agent::start(
            &[
                "--postgres",
                &pg.url("postgres", None),
                "--store",
                &store.url(),
            ],
            &all_env,
            logs.path(),
        );
        wait_archived(pg, store).await;
        let opened = store.open().await;
        wait_for_backups(
            opened.as_ref(),
            &default_source(),
            1,
            Duration::from_secs(120),
            &agent,
        )
        .await;
        Archiving { agent, _logs: logs }
    }

    /// Takes a base backup of `pg` with `logship backup` (the archive must exist already).
    pub fn backup(&self, pg: &PgServer, store: &TestStore) {
        let out = logship(
            &[
                "--postgres",
                &pg.url("postgres", None),
                "--store",
                &store.url(),
                "backup",
            ],
            &store.env(),
        );
        assert!(
            out.status.success(),
            "backup: {}\nagent log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.agent.log()
        );
    }
}

/// The restorable window of the default source, as `list` and `restore` see it.
pub async fn restorable_window(store: &TestStore) -> logship::pg::window::Window {
    let opened = store.open().await;
    logship::pg::window::load_source(opened.as_ref(), &default_source())
        .await
        .unwrap()
        .summary
        .window
        .unwrap()
}

/// Where `pg`'s WAL ends now: its flush position, or on a standby what it replayed.
pub fn wal_end(pg: &PgServer) -> Lsn {
    pg.sql(
        "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
         ELSE pg_current_wal_flush_lsn() END",
    )
    .parse()
    .unwrap()
}

/// Waits until the store holds `pg`'s WAL up to where it ends now.
pub async fn wait_archived(pg: &PgServer, store: &TestStore) {
    let opened = store.open().await;
    let end = wal_end(pg);
    wait_durable(
        opened.as_ref(),
        &default_source(),
        end,
        Duration::from_secs(60),
    )
    .await;
}

/// Runs `statements` on `pg` in one transaction; returns its xid.
pub fn commit_returning_xid(pg: &PgServer, statements: &str) -> String {
    let out = pg.sql(&format!(
        "BEGIN; {statements}; SELECT pg_current_xact_id(); COMMIT;"
    ));
    // psql prints every statement's result; the xid is the only all-digit line.
    out.lines()
        .find(|line| !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no xid in {out:?}"))
        .to_owned()
}

/// The commit time of transaction `xid` (needs `track_commit_timestamp = on`), exact to
/// the microsecond.
pub fn commit_time(pg: &PgServer, xid: &str) -> jiff::Timestamp {
    pg.sql(&format!(
        "SELECT to_char(pg_xact_commit_timestamp('{xid}'::xid) AT TIME ZONE 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    ))
    .parse()
    .unwrap()
}

/// Every row of `table` as text, sorted by all its columns: equal outputs, equal tables.
pub fn rows_sql(table: &str) -> String {
    format!("SELECT t::text FROM {table} AS t ORDER BY t")
}

/// Runs `logship --store URL restore --to DIR <args>`.
pub fn restore(store: &TestStore, to: &Path, args: &[&str]) -> Output {
    let (url, to) = (store.url(), to.display().to_string());
    let mut all = vec!["--store", &url, "restore", "--to", &to];
    all.extend_from_slice(args);
    logship(&all, &store.env())
}

/// Asserts that a restore into `to` failed with exit 1 and exactly `line` as its last line
/// on stderr, and left no `to` behind.
pub fn assert_refused(out: &Output, to: &Path, line: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", last_stderr_line(out));
    assert_eq!(last_stderr_line(out), line);
    assert!(!to.exists(), "the failed restore left {}", to.display());
}

/// Restores into `to` with `--start` on a free port; panics with the server log unless the
/// restore succeeded. Returns the running server and what the restore printed.
pub fn restore_and_start(store: &TestStore, to: &Path, args: &[&str]) -> (RestoredServer, String) {
    let port = free_port();
    let port_arg = port.to_string();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--start", "--port", &port_arg]);
    let out = restore(store, to, &all);
    let server = RestoredServer {
        data: to.to_path_buf(),
        port,
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "restore {args:?}: {stdout}{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );
    (server, stdout)
}

/// The `reached <RFC 3339 UTC time> at <LSN>` line of a restore with `--start`.
pub fn reached(stdout: &str) -> (jiff::Timestamp, Lsn) {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("reached "))
        .unwrap_or_else(|| panic!("no reached line in {stdout}"));
    let (time, lsn) = line.split_once(" at ").unwrap();
    assert!(time.ends_with('Z'), "{time} is not RFC 3339 in UTC");
    (time.parse().unwrap(), lsn.parse().unwrap())
}

/// A server `logship restore --start` left running, stopped when the test ends however it ends.
pub struct RestoredServer {
    data: PathBuf,
    port: u16,
}

impl RestoredServer {
    /// The restored data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Runs `sql` with psql over the socket in the data directory; returns trimmed `-At` output.
    pub fn sql(&self, sql: &str) -> String {
        let out = Command::new(PgServer::bin("psql"))
            .arg("-h")
            .arg(&self.data)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The log of the supervised start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join(logship::pg::restore::start::START_LOG))
            .unwrap_or_default()
    }
}

impl Drop for RestoredServer {
    fn drop(&mut self) {
        let _ = pg_ctl(&self.data, &["-m", "immediate", "-w", "stop"]);
    }
}

/// Whether `pg_ctl status` finds a server running on `data`.
pub fn server_running(data: &Path) -> bool {
    pg_ctl(data, &["status"]).status.success()
}

fn pg_ctl(data: &Path, args: &[&str]) -> Output {
    let pg_ctl = PgServer::bin("pg_ctl");
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_ctl);
        c
    } else {
        Command::new(pg_ctl)
    };
    command.arg("-D").arg(data).args(args).output().unwrap()
}
