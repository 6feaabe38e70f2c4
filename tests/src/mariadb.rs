//! A real MariaDB 10.11 per test: `mariadb-install-db` in a temp dir, a free
//! loopback port, the binary log on, stopped when the handle drops.
//!
//! When the tests run as root, `mariadbd` is started with `user=mysql` and
//! switches to that OS user itself, so the temp dir, which holds the pid file
//! and the socket, belongs to `mysql`. Root connects over TCP with an empty
//! password (`--auth-root-authentication-method=normal`).

// Test harness: a panic here is a failed test, with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use tempfile::TempDir;

use crate::util::{free_port, is_root};

/// The user that [`MariaDb::start_replica_of`] creates on the primary for the replica.
pub const REPL_USER: &str = "repl";
/// The password of [`REPL_USER`].
pub const REPL_PASSWORD: &str = "repl";
/// The privileges a binlog reader needs: the ones [`REPL_USER`] gets.
pub const REPL_PRIVILEGES: &str = "REPLICATION SLAVE, REPLICATION CLIENT";

/// How long a start may take until the server accepts connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a clean shutdown may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a replica may take to connect, or to catch up with its primary.
const REPLICA_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one client connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The binlog base name: files are `binlog.000001`, … beside `binlog.index` in the datadir.
const BINLOG_BASENAME: &str = "binlog";

/// `binlog_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BinlogFormat {
    /// Row images (`ROW`), what a change stream wants.
    #[default]
    Row,
    /// Statements where safe, rows otherwise (`MIXED`).
    Mixed,
    /// Statements (`STATEMENT`).
    Statement,
}

impl BinlogFormat {
    fn cnf_value(self) -> &'static str {
        match self {
            BinlogFormat::Row => "ROW",
            BinlogFormat::Mixed => "MIXED",
            BinlogFormat::Statement => "STATEMENT",
        }
    }
}

/// `binlog_checksum`: whether each event ends in a CRC32.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BinlogChecksum {
    /// No checksum (`NONE`).
    None,
    /// A CRC32 after each event (`CRC32`, the server's default).
    #[default]
    Crc32,
}

impl BinlogChecksum {
    fn cnf_value(self) -> &'static str {
        match self {
            BinlogChecksum::None => "NONE",
            BinlogChecksum::Crc32 => "CRC32",
        }
    }
}

/// How to set up a test server.
#[derive(Debug, Clone)]
pub struct MariaDbOptions {
    /// Whether the binary log is on (`log-bin`).
    pub binlog: bool,
    /// `binlog_format`.
    pub binlog_format: BinlogFormat,
    /// `server_id`; a replica needs one different from its primary's.
    pub server_id: u32,
    /// `binlog_checksum`.
    pub binlog_checksum: BinlogChecksum,
    /// `gtid_domain_id`.
    pub gtid_domain_id: u32,
    /// `log_slave_updates`: a replica writes what it applies to its own binlog (needed to fail over to it).
    pub log_slave_updates: bool,
    /// `max_allowed_packet`; the default 256M lets a test write rows (and row events) over 16 MiB.
    pub max_allowed_packet: String,
    /// Extra `[mysqld]` lines of `my.cnf` (`name=value`), after the harness's own so they win.
    pub cnf: Vec<String>,
}

impl Default for MariaDbOptions {
    fn default() -> Self {
        MariaDbOptions {
            binlog: true,
            binlog_format: BinlogFormat::Row,
            server_id: 1,
            binlog_checksum: BinlogChecksum::Crc32,
            gtid_domain_id: 0,
            log_slave_updates: false,
            max_allowed_packet: "256M".to_string(),
            cnf: Vec::new(),
        }
    }
}

/// A running MariaDB 10.11 in its own temp dir; killed (SIGKILL) on drop.
pub struct MariaDb {
    port: u16,
    options: MariaDbOptions,
    dir: TempDir,
    /// The `mariadbd` process while it runs; `None` after [`MariaDb::stop`] or [`MariaDb::kill`].
    child: Mutex<Option<Child>>,
}

/// One `mariadb-install-db` at a time in this process: a dozen bootstraps at once on a
/// small machine made one fail now and then.
static INSTALL: Mutex<()> = Mutex::new(());

/// How often a failed bootstrap is tried in all, each time in an empty datadir.
const INSTALL_ATTEMPTS: usize = 3;

impl MariaDb {
    /// Runs `mariadb-install-db` into the datadir, again into an emptied one if it fails.
    fn install_datadir(&self) {
        let _one_at_a_time = INSTALL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut failure = String::new();
        for _ in 0..INSTALL_ATTEMPTS {
            let _ = fs::remove_dir_all(self.datadir());
            let mut install = Command::new(MariaDb::bin("mariadb-install-db"));
            // --no-defaults keeps the machine's /etc/mysql out; it must come first.
            install
                .arg("--no-defaults")
                .arg(format!("--datadir={}", self.datadir().display()))
                .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
            if is_root() {
                install.arg("--user=mysql");
            }
            let out = install.output().expect("run mariadb-install-db");
            if out.status.success() {
                return;
            }
            failure = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        panic!("mariadb-install-db failed {INSTALL_ATTEMPTS} times; the last time: {failure}");
    }

    /// Initializes a datadir with `mariadb-install-db` and starts a server set up as `options` says.
    pub fn start(options: MariaDbOptions) -> MariaDb {
        let dir = tempfile::Builder::new()
            .prefix("logship-mariadb-")
            .tempdir()
            .expect("create temp dir");
        chown_mysql(dir.path());
        let port = free_port();
        let server = MariaDb {
            port,
            options,
            dir,
            child: Mutex::new(None),
        };

        server.install_datadir();

        let cnf = server.cnf_path();
        fs::write(&cnf, server.my_cnf()).unwrap_or_else(|e| panic!("write {}: {e}", cnf.display()));
        chown_mysql(&cnf);
        server.spawn();
        server
    }

    /// Starts a second server (its `server_id` must differ from the primary's) that
    /// replicates `primary` by GTID as [`REPL_USER`], from the primary's first binlog
    /// file on; returns once both replication threads run.
    pub async fn start_replica_of(primary: &MariaDb, options: MariaDbOptions) -> MariaDb {
        assert_ne!(
            options.server_id, primary.options.server_id,
            "a replica needs a server_id different from its primary's"
        );
        primary
            .create_user(REPL_USER, REPL_PASSWORD, REPL_PRIVILEGES)
            .await;
        let replica = MariaDb::start(options);
        replica
            .exec(&format!(
                "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={}, \
                 MASTER_USER='{REPL_USER}', MASTER_PASSWORD='{REPL_PASSWORD}', \
                 MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos; \
                 START SLAVE",
                primary.port
            ))
            .await;
        let deadline = Instant::now() + REPLICA_TIMEOUT;
        loop {
            let status = replica.slave_status().await.unwrap_or_default();
            let running = |k: &str| status.get(k).map(String::as_str) == Some("Yes");
            if running("Slave_IO_Running") && running("Slave_SQL_Running") {
                break;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the replica did not start replicating within {REPLICA_TIMEOUT:?}: {}\n--- replica log tail ---\n{}",
                    status_summary(&status),
                    tail(&replica.log(), 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        replica
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The options the server was started with.
    pub fn options(&self) -> &MariaDbOptions {
        &self.options
    }

    /// The temp dir holding the datadir, `my.cnf`, the error log, the pid file and the socket.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The data directory.
    pub fn datadir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the binlog files and their index (the datadir).
    pub fn binlog_dir(&self) -> PathBuf {
        self.datadir()
    }

    /// The binlog base name (`binlog`): files are `binlog.000001`, …, listed in `binlog.index`.
    pub fn binlog_basename(&self) -> &'static str {
        BINLOG_BASENAME
    }

    /// The path of binlog file `name` (e.g. `binlog.000001`).
    pub fn binlog_path(&self, name: &str) -> PathBuf {
        self.binlog_dir().join(name)
    }

    /// The bytes of binlog file `name` as they are on disk now.
    pub fn binlog_file(&self, name: &str) -> Vec<u8> {
        let path = self.binlog_path(name);
        fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// The error log, which collects the server's stderr across restarts.
    pub fn error_log_path(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }

    /// The error log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.error_log_path()).unwrap_or_default()
    }

    /// `mysql://user[:password]@127.0.0.1:port`; the password must be URL-safe.
    pub fn url(&self, user: &str, password: Option<&str>) -> String {
        match password {
            Some(pw) => format!("mysql://{user}:{pw}@127.0.0.1:{}", self.port),
            None => format!("mysql://{user}@127.0.0.1:{}", self.port),
        }
    }

    /// The URL of `root`, who has no password.
    pub fn root_url(&self) -> String {
        self.url("root", None)
    }

    /// A MariaDB binary: from env `LOGSHIP_MARIADB_BINDIR`, else `/usr/sbin` or `/usr/bin`, else `PATH`.
    pub fn bin(name: &str) -> PathBuf {
        if let Some(dir) = std::env::var_os("LOGSHIP_MARIADB_BINDIR") {
            return PathBuf::from(dir).join(name);
        }
        ["/usr/sbin", "/usr/bin"]
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|path| path.exists())
            .unwrap_or_else(|| PathBuf::from(name))
    }

    /// A connection as root over TCP.
    pub async fn conn(&self) -> Conn {
        let url = self.root_url();
        match tokio::time::timeout(CONNECT_TIMEOUT, Conn::from_url(&url)).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => panic!(
                "connect to {url}: {e}\n--- log tail ---\n{}",
                tail(&self.log(), 30)
            ),
            Err(_) => panic!("connect to {url}: no answer within {CONNECT_TIMEOUT:?}"),
        }
    }

    /// Runs `sql` as root: one statement or several separated by `;`.
    pub async fn exec(&self, sql: &str) {
        let mut conn = self.conn().await;
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql:?} failed: {e}"));
        let _ = conn.disconnect().await;
    }

    /// Runs query `sql` as root; every value as text, SQL NULL as `NULL`.
    pub async fn query(&self, sql: &str) -> Vec<Vec<String>> {
        self.query_rows(sql)
            .await
            .into_iter()
            .map(|row| row.unwrap().into_iter().map(value_text).collect())
            .collect()
    }

    /// The first column of the only row of query `sql`.
    pub async fn query_value(&self, sql: &str) -> String {
        let rows = self.query(sql).await;
        assert_eq!(rows.len(), 1, "{sql:?} returned {rows:?}, not one row");
        rows[0][0].clone()
    }

    /// Commits each of `statements` as a transaction of its own, on one connection, and
    /// returns the GTID each one got (`@@last_gtid`), in commit order.
    pub async fn commit_each(&self, statements: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut conn = self.conn().await;
        let mut gtids = Vec::new();
        for sql in statements {
            conn.query_drop(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql:?} failed: {e}"));
            let gtid: Option<String> = conn
                .query_first("SELECT @@last_gtid")
                .await
                .unwrap_or_else(|e| panic!("SELECT @@last_gtid failed: {e}"));
            gtids.push(gtid.expect("a GTID for the commit"));
        }
        let _ = conn.disconnect().await;
        gtids
    }

    /// Creates `name@'%'` with `password` (unless it exists) and grants it `privileges` on `*.*`.
    pub async fn create_user(&self, name: &str, password: &str, privileges: &str) {
        self.exec(&format!(
            "CREATE USER IF NOT EXISTS '{name}'@'%' IDENTIFIED BY '{password}'; \
             GRANT {privileges} ON *.* TO '{name}'@'%'"
        ))
        .await;
    }

    /// `SHOW BINARY LOGS`: (file name, size in bytes), oldest first.
    pub async fn binary_logs(&self) -> Vec<(String, u64)> {
        self.query("SHOW BINARY LOGS")
            .await
            .into_iter()
            .map(|row| {
                let size = row[1]
                    .parse()
                    .unwrap_or_else(|e| panic!("binlog size {:?}: {e}", row[1]));
                (row[0].clone(), size)
            })
            .collect()
    }

    /// The binlog file being written and the position after its last event (`SHOW MASTER STATUS`).
    pub async fn current_binlog(&self) -> (String, u64) {
        let rows = self.query("SHOW MASTER STATUS").await;
        assert_eq!(
            rows.len(),
            1,
            "SHOW MASTER STATUS returned {rows:?}: is the binlog on?"
        );
        let pos = rows[0][1]
            .parse()
            .unwrap_or_else(|e| panic!("binlog position {:?}: {e}", rows[0][1]));
        (rows[0][0].clone(), pos)
    }

    /// `@@gtid_binlog_pos`: the last GTID per domain in the binlog, e.g. `0-1-5` (empty before any).
    pub async fn gtid_binlog_pos(&self) -> String {
        self.query_value("SELECT @@GLOBAL.gtid_binlog_pos").await
    }

    /// Waits (bounded) until this replica has applied everything in `primary`'s binlog now.
    pub async fn wait_caught_up(&self, primary: &MariaDb) {
        let pos = primary.gtid_binlog_pos().await;
        let secs = REPLICA_TIMEOUT.as_secs();
        let waited = self
            .query_value(&format!("SELECT MASTER_GTID_WAIT('{pos}', {secs})"))
            .await;
        if waited != "0" {
            let status = self.slave_status().await.unwrap_or_default();
            panic!(
                "the replica did not reach the primary's {pos:?} within {secs} s (at {:?}): {}\n--- replica log tail ---\n{}",
                self.query_value("SELECT @@GLOBAL.gtid_slave_pos").await,
                status_summary(&status),
                tail(&self.log(), 30)
            );
        }
    }

    /// Turns a replica into a primary: `STOP SLAVE; RESET SLAVE ALL`.
    pub async fn promote(&self) {
        self.exec("STOP SLAVE; RESET SLAVE ALL").await;
    }

    /// `SHOW SLAVE STATUS` by column name, or `None` when this server replicates nothing.
    pub async fn slave_status(&self) -> Option<HashMap<String, String>> {
        let row = self
            .query_rows("SHOW SLAVE STATUS")
            .await
            .into_iter()
            .next()?;
        let names: Vec<String> = row
            .columns_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        Some(
            names
                .into_iter()
                .zip(row.unwrap().into_iter().map(value_text))
                .collect(),
        )
    }

    /// Whether the `mariadbd` process of this handle runs.
    pub fn is_running(&self) -> bool {
        let mut child = self.child.lock().unwrap();
        match child.as_mut() {
            Some(c) => c.try_wait().expect("check on mariadbd").is_none(),
            None => false,
        }
    }

    /// A clean shutdown: SIGTERM, then wait (bounded) until the process has exited.
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap();
        let c = child.as_mut().expect("stop: the server is not running");
        let status = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM {}", c.id());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if c.try_wait().expect("wait for mariadbd").is_some() {
                break;
            }
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                *child = None;
                panic!(
                    "mariadbd did not shut down within {STOP_TIMEOUT:?}; killed it\n--- log tail ---\n{}",
                    tail(&self.log(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        *child = None;
    }

    /// A simulated crash: SIGKILL, then wait until the process is gone.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap();
        let mut c = child.take().expect("kill: the server is not running");
        c.kill().expect("SIGKILL mariadbd");
        c.wait().expect("wait for mariadbd");
    }

    /// Starts the server again on the same datadir, config and port (stopping it cleanly
    /// first if it runs) and waits until it accepts connections. MariaDB opens a new binlog
    /// file on every start.
    pub fn restart(&self) {
        if self.is_running() {
            self.stop();
        }
        self.spawn();
    }

    fn cnf_path(&self) -> PathBuf {
        self.dir.path().join("my.cnf")
    }

    fn my_cnf(&self) -> String {
        let o = &self.options;
        let dir = self.dir.path().display();
        let mut lines = vec![
            "[mysqld]".to_string(),
            format!("datadir={}", self.datadir().display()),
            format!("port={}", self.port),
            "bind-address=127.0.0.1".to_string(),
            // Both must be in a directory that `mysql` owns, or the server exits at once.
            format!("socket={dir}/mysqld.sock"),
            format!("pid-file={dir}/mysqld.pid"),
            format!("tmpdir={dir}"),
            format!("server_id={}", o.server_id),
            format!("gtid_domain_id={}", o.gtid_domain_id),
            format!("max_allowed_packet={}", o.max_allowed_packet),
            // Tests crash the process, never the OS: the page cache keeps every commit.
            "innodb_flush_log_at_trx_commit=2".to_string(),
            "sync_binlog=0".to_string(),
            "innodb_buffer_pool_size=64M".to_string(),
        ];
        if o.binlog {
            lines.push(format!(
                "log-bin={}",
                self.binlog_dir().join(BINLOG_BASENAME).display()
            ));
            lines.push(format!("binlog_format={}", o.binlog_format.cnf_value()));
            lines.push(format!("binlog_checksum={}", o.binlog_checksum.cnf_value()));
        }
        if o.log_slave_updates {
            lines.push("log_slave_updates=ON".to_string());
        }
        if is_root() {
            lines.push("user=mysql".to_string());
        }
        lines.extend(o.cnf.iter().cloned());
        let mut text = lines.join("\n");
        text.push('\n');
        text
    }

    /// Starts `mariadbd` on the existing datadir and waits until it greets clients.
    fn spawn(&self) {
        let log_path = self.error_log_path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", log_path.display()));
        let err = log.try_clone().expect("clone the error log handle");
        // --defaults-file must come first; without it the server also reads /etc/mysql.
        let child = Command::new(MariaDb::bin("mariadbd"))
            .arg(format!("--defaults-file={}", self.cnf_path().display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", MariaDb::bin("mariadbd").display()));
        let mut guard = self.child.lock().unwrap();
        let child = guard.insert(child);

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("check on mariadbd") {
                *guard = None;
                panic!(
                    "mariadbd exited during start ({status})\n--- log tail ---\n{}",
                    tail(&self.log(), 30)
                );
            }
            if greets(self.port) {
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                *guard = None;
                panic!(
                    "mariadbd did not accept connections on port {} within {START_TIMEOUT:?}\n--- log tail ---\n{}",
                    self.port,
                    tail(&self.log(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    async fn query_rows(&self, sql: &str) -> Vec<Row> {
        let mut conn = self.conn().await;
        let rows: Vec<Row> = conn
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql:?} failed: {e}"));
        let _ = conn.disconnect().await;
        rows
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // Already stopped is fine: a test may have stopped it.
        if let Ok(child) = self.child.get_mut()
            && let Some(mut c) = child.take()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether a server on `port` accepts a connection and sends the protocol-10 handshake,
/// which it does only once it is ready for queries.
fn greets(port: u16) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    // A packet: 3-byte length, sequence number, payload; the handshake's payload opens with 10.
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && head[4] == 10
}

fn value_text(value: Value) -> String {
    match value {
        Value::NULL => "NULL".to_string(),
        Value::Bytes(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        other => other.as_sql(true),
    }
}

fn status_summary(status: &HashMap<String, String>) -> String {
    if status.is_empty() {
        return "no SHOW SLAVE STATUS row".to_string();
    }
    [
        "Slave_IO_Running",
        "Slave_SQL_Running",
        "Last_IO_Error",
        "Last_SQL_Error",
        "Gtid_IO_Pos",
    ]
    .iter()
    .map(|k| format!("{k}={:?}", status.get(*k).map(String::as_str).unwrap_or("")))
    .collect::<Vec<_>>()
    .join(", ")
}

fn chown_mysql(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .arg("mysql:mysql")
            .arg(path)
            .status()
            .expect("run chown");
        assert!(status.success(), "chown mysql {}", path.display());
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A CA and a server certificate it signs, for a TLS test server: pass [`TestCerts::cnf`]
/// as [`MariaDbOptions::cnf`] and [`TestCerts::ca_path`] as the client's `sslrootcert`.
pub struct TestCerts {
    dir: TempDir,
}

impl TestCerts {
    /// Generates the CA and a server certificate for the names in `hosts` (DNS names or IPs).
    pub fn generate(hosts: &[&str]) -> TestCerts {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType,
        };
        let dir = tempfile::Builder::new()
            .prefix("logship-mariadb-tls-")
            .tempdir()
            .expect("create temp dir");
        let ca_key = KeyPair::generate().expect("generate CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "logship test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).expect("self-sign CA");

        let key = KeyPair::generate().expect("generate server key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("server params");
        for host in hosts {
            params.subject_alt_names.push(match host.parse() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*host).try_into().expect("a DNS name")),
            });
        }
        params.distinguished_name.push(
            DnType::CommonName,
            hosts.first().copied().unwrap_or("server"),
        );
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("sign server cert");
        fs::write(dir.path().join("ca.crt"), ca.pem()).expect("write ca.crt");
        fs::write(dir.path().join("server.crt"), cert.pem()).expect("write server.crt");
        fs::write(dir.path().join("server.key"), key.serialize_pem()).expect("write server.key");
        // The server switches to `mysql` before it reads them.
        chown_mysql(dir.path());
        for name in ["ca.crt", "server.crt", "server.key"] {
            chown_mysql(&dir.path().join(name));
        }
        TestCerts { dir }
    }

    /// The CA certificate (PEM).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// The `[mysqld]` lines that turn TLS on with these files.
    pub fn cnf(&self) -> Vec<String> {
        let d = self.dir.path().display();
        vec![
            format!("ssl_ca={d}/ca.crt"),
            format!("ssl_cert={d}/server.crt"),
            format!("ssl_key={d}/server.key"),
        ]
    }
}
