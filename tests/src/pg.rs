//! A real PostgreSQL 15 per test: initdb in a temp dir, a free loopback port,
//! optional password auth and TLS, stopped when the handle drops.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root every
//! server binary runs as the `postgres` OS user through `runuser`.

// Test harness: a panic here is a failed test, with its message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::util::{free_port, is_root, temp_dir};

/// The password the harness gives the `postgres` superuser under password auth.
pub const SUPERUSER_PASSWORD: &str = "postgres";

/// How clients over TCP authenticate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PgAuth {
    /// No password (`trust`).
    #[default]
    Trust,
    /// `md5`, with passwords stored as md5.
    Md5,
    /// `scram-sha-256`, with passwords stored as SCRAM verifiers.
    Scram,
}

impl PgAuth {
    fn hba_method(self) -> &'static str {
        match self {
            PgAuth::Trust => "trust",
            PgAuth::Md5 => "md5",
            PgAuth::Scram => "scram-sha-256",
        }
    }
}

/// How to set up a test server.
#[derive(Debug, Clone, Default)]
pub struct PgOptions {
    /// Authentication method for TCP connections.
    pub auth: PgAuth,
    /// Extra `postgresql.conf` lines (name, value), appended after the defaults so they win.
    pub conf: Vec<(String, String)>,
    /// Generate a CA and a server certificate it signs (for 127.0.0.1 and localhost) and set `ssl=on`.
    pub tls: bool,
    /// WAL segment size in MiB given to initdb (default 16).
    pub wal_segment_mb: Option<u32>,
}

/// A running PostgreSQL 15 in its own temp dir; stopped (`-m immediate`) on drop.
pub struct PgServer {
    port: u16,
    data: PathBuf,
    ca_cert: Option<PathBuf>,
    dir: TempDir,
}

impl PgServer {
    /// Starts a server with [`PgOptions::default`]: trust auth, `wal_level=replica`.
    pub fn start() -> PgServer {
        PgServer::start_with(PgOptions::default())
    }

    /// Starts a server set up as `opts` says.
    pub fn start_with(opts: PgOptions) -> PgServer {
        let dir = temp_dir("pg");
        let port = free_port();
        let data = dir.path().join("data");
        let mut initdb = Command::new(PgServer::bin("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"]);
        if let Some(mb) = opts.wal_segment_mb {
            initdb.arg(format!("--wal-segsize={mb}"));
        }
        check(&initdb, "initdb");

        let mut conf = base_conf(port, dir.path());
        match opts.auth {
            PgAuth::Trust => {}
            PgAuth::Md5 => conf.push(("password_encryption".into(), "md5".into())),
            PgAuth::Scram => conf.push(("password_encryption".into(), "scram-sha-256".into())),
        }
        let ca_cert = if opts.tls {
            let ca = write_certs(dir.path(), &data);
            conf.push(("ssl".into(), "on".into()));
            Some(ca)
        } else {
            None
        };
        conf.extend(opts.conf);
        append_conf(&data, &conf);
        if opts.auth != PgAuth::Trust {
            let m = opts.auth.hba_method();
            write_file(
                &data.join("pg_hba.conf"),
                &format!(
                    "local all postgres trust\n\
                     host all all 127.0.0.1/32 {m}\n\
                     host replication all 127.0.0.1/32 {m}\n"
                ),
            );
        }
        let server = PgServer {
            port,
            data,
            ca_cert,
            dir,
        };
        server.start_again();
        if opts.auth != PgAuth::Trust {
            server.sql(&format!(
                "ALTER ROLE postgres PASSWORD '{SUPERUSER_PASSWORD}'"
            ));
        }
        server
    }

    /// Clones `primary` with `pg_basebackup -R -X stream` and starts the copy as a hot standby on a new port.
    pub fn standby_of(primary: &PgServer) -> PgServer {
        let dir = temp_dir("pg-standby");
        let port = free_port();
        let data = dir.path().join("data");
        let mut backup = Command::new(PgServer::bin("pg_basebackup"));
        backup
            .arg("-D")
            .arg(&data)
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
            .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
            .args(["-U", "postgres"])
            .env("PGPASSWORD", SUPERUSER_PASSWORD)
            .env("PGSSLMODE", "disable");
        check(&backup, "pg_basebackup");
        append_conf(&data, &base_conf(port, dir.path()));
        let ca_cert = primary.ca_cert.as_ref().map(|ca| {
            let copy = dir.path().join("ca.crt");
            fs::copy(ca, &copy).expect("copy the CA certificate");
            copy
        });
        let server = PgServer {
            port,
            data,
            ca_cert,
            dir,
        };
        server.start_again();
        server
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The temp dir holding the data directory, the log, the socket and the CA certificate.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A PostgreSQL binary: from env `LOGSHIP_PG_BINDIR`, else `/usr/lib/postgresql/15/bin`.
    pub fn bin(name: &str) -> PathBuf {
        std::env::var_os("LOGSHIP_PG_BINDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
            .join(name)
    }

    /// `postgres://user[:password]@127.0.0.1:port/postgres`.
    pub fn url(&self, user: &str, password: Option<&str>) -> String {
        match password {
            Some(pw) => format!("postgres://{user}:{pw}@127.0.0.1:{}/postgres", self.port),
            None => format!("postgres://{user}@127.0.0.1:{}/postgres", self.port),
        }
    }

    /// The CA certificate (PEM) that signed the server certificate, when TLS is on.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Runs `sql` with psql as the superuser over the unix socket; returns trimmed `-At` output.
    pub fn sql(&self, sql: &str) -> String {
        let mut psql = Command::new(PgServer::bin("psql"));
        psql.arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-At", "-X", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        let out = as_postgres(&psql).output().expect("run psql");
        assert!(
            out.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A superuser client over TCP without TLS; its connection task is spawned.
    pub async fn client(&self) -> tokio_postgres::Client {
        let conf = format!(
            "host=127.0.0.1 port={} user=postgres password={SUPERUSER_PASSWORD} dbname=postgres sslmode=disable",
            self.port
        );
        let (client, connection) = tokio_postgres::connect(&conf, tokio_postgres::NoTls)
            .await
            .expect("connect tokio-postgres as postgres");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    /// A clean stop (`pg_ctl -m fast`).
    pub fn stop_fast(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    /// A simulated crash (`pg_ctl -m immediate`).
    pub fn stop_immediate(&self) {
        self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
    }

    /// Starts the stopped server again and waits until it accepts connections.
    pub fn start_again(&self) {
        let log = self.dir.path().join("log");
        let mut start = Command::new(PgServer::bin("pg_ctl"));
        start
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"]);
        let out = as_postgres(&start).output().expect("run pg_ctl start");
        if !out.status.success() {
            panic!(
                "postgres did not start: {}\n--- log tail ---\n{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                tail(&self.log(), 30)
            );
        }
    }

    /// Appends `conf` lines to `postgresql.conf` and restarts (fast stop, start).
    pub fn restart_with(&self, conf: &[(&str, &str)]) {
        let conf: Vec<(String, String)> = conf
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        append_conf(self.data_dir(), &conf);
        self.stop_fast();
        self.start_again();
    }

    /// Replaces `pg_hba.conf` and reloads the server.
    pub fn set_hba(&self, content: &str) {
        write_file(&self.data_dir().join("pg_hba.conf"), content);
        self.pg_ctl(&["reload"]);
    }

    /// Promotes a standby and waits until it accepts writes.
    pub fn promote(&self) {
        self.pg_ctl(&["-w", "promote"]);
    }

    /// The bytes of `pg_wal/<name>`.
    pub fn wal_file(&self, name: &str) -> Vec<u8> {
        let path = self.data_dir().join("pg_wal").join(name);
        fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Runs `cmd` as the `postgres` OS user (when root), e.g. pgbench or pg_waldump.
    pub fn run_as_postgres(&self, cmd: &mut Command) -> Output {
        as_postgres(cmd).output().expect("run command as postgres")
    }

    /// Creates tablespace `name` in a new directory `name` beside the data directory, owned
    /// by the server; returns its OID and directory.
    pub fn create_tablespace(&self, name: &str) -> (u32, String) {
        let dir = self.dir().join(name);
        let out = self.run_as_postgres(Command::new("mkdir").arg(&dir));
        assert!(out.status.success(), "mkdir {}", dir.display());
        let location = dir.display().to_string();
        self.sql(&format!("CREATE TABLESPACE {name} LOCATION '{location}'"));
        let oid = self
            .sql(&format!(
                "SELECT oid FROM pg_tablespace WHERE spcname = '{name}'"
            ))
            .parse()
            .unwrap();
        (oid, location)
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut ctl = Command::new(PgServer::bin("pg_ctl"));
        ctl.arg("-D").arg(self.data_dir()).args(args);
        let out = as_postgres(&ctl).output().expect("run pg_ctl");
        assert!(
            out.status.success(),
            "pg_ctl {}: {}\n--- log tail ---\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            tail(&self.log(), 30)
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let mut ctl = Command::new(PgServer::bin("pg_ctl"));
        ctl.arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"]);
        // Already stopped is fine: a test may have stopped it.
        let _ = as_postgres(&ctl).output();
    }
}

/// `cmd` rebuilt to run as the `postgres` OS user when we are root, keeping its env and cwd.
fn as_postgres(cmd: &Command) -> Command {
    let mut out = if is_root() {
        let mut c = Command::new("runuser");
        c.args([OsStr::new("-u"), OsStr::new("postgres"), OsStr::new("--")])
            .arg(cmd.get_program());
        c
    } else {
        Command::new(cmd.get_program())
    };
    out.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => out.env(k, v),
            None => out.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        out.current_dir(dir);
    }
    out
}

fn check(cmd: &Command, what: &str) {
    let out = as_postgres(cmd)
        .output()
        .unwrap_or_else(|e| panic!("run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn base_conf(port: u16, dir: &Path) -> Vec<(String, String)> {
    [
        ("port", port.to_string()),
        ("listen_addresses", "127.0.0.1".to_string()),
        ("unix_socket_directories", dir.display().to_string()),
        ("wal_level", "replica".to_string()),
        ("max_wal_senders", "10".to_string()),
        ("max_replication_slots", "10".to_string()),
        ("wal_keep_size", "1GB".to_string()),
        // The tests crash servers with immediate stops, never the OS, so the page cache is enough.
        ("fsync", "off".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn append_conf(data: &Path, conf: &[(String, String)]) {
    let path = data.join("postgresql.conf");
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    for (name, value) in conf {
        writeln!(file, "{name} = {}", quote_conf(value)).expect("append to postgresql.conf");
    }
}

/// Quotes a value unless it already is: postgresql.conf takes every setting quoted, paths only so.
fn quote_conf(value: &str) -> String {
    if value.starts_with('\'') {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

fn write_file(path: &Path, content: &str) {
    fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    chown_postgres(path);
}

fn chown_postgres(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(path)
            .status()
            .expect("run chown");
        assert!(status.success(), "chown postgres {}", path.display());
    }
}

/// Writes `<dir>/ca.crt`, and `server.crt`/`server.key` (signed by that CA, for 127.0.0.1 and
/// localhost) into the data directory, where PostgreSQL looks by default and pg_basebackup copies them.
fn write_certs(dir: &Path, data: &Path) -> PathBuf {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
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
    let mut params =
        CertificateParams::new(vec!["localhost".to_string()]).expect("server cert params");
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("sign server cert");

    let ca_path = dir.join("ca.crt");
    write_file(&ca_path, &ca.pem());
    write_file(&data.join("server.crt"), &cert.pem());
    let key_path = data.join("server.key");
    write_file(&key_path, &key.serialize_pem());
    // PostgreSQL refuses a private key that others may read.
    let status = Command::new("chmod")
        .arg("600")
        .arg(&key_path)
        .status()
        .expect("run chmod");
    assert!(status.success(), "chmod 600 {}", key_path.display());
    ca_path
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
