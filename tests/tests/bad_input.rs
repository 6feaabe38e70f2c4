//! Bad input gets one clear line naming the fix, exit status 1, and nothing is
//! written: no slot on the server, no object in the store.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use logship_tests::agent::logship;
use logship_tests::archive::TestStore;
use logship_tests::pg::{PgAuth, PgOptions, PgServer};
use logship_tests::s3::S3Server;
use logship_tests::util::{free_port, logship_bin, temp_dir};

fn run(postgres_url: &str, store_url: &str, env: &[(String, String)]) -> Output {
    let mut env = env.to_vec();
    env.push((
        "LOGSHIP_METRICS_LISTEN".into(),
        format!("127.0.0.1:{}", free_port()),
    ));
    logship(
        &["--postgres", postgres_url, "--store", store_url, "run"],
        &env,
    )
}

/// Asserts a failed run: exit status 1 and exactly `expected` as the one error line.
fn assert_fails_with(output: &Output, expected: &str) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        format!("error: source default: {expected}"),
        "the failure must be one line"
    );
}

fn slot_count(pg: &PgServer) -> String {
    pg.sql("SELECT count(*) FROM pg_replication_slots")
}

/// Every file under `dir` with its content, to prove a store untouched.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                files.insert(
                    entry.path().display().to_string(),
                    std::fs::read(entry.path()).unwrap(),
                );
            }
        }
    }
    files
}

fn store_dir() -> (tempfile::TempDir, String) {
    let dir = temp_dir("store");
    let url = format!("file://{}", dir.path().join("archive").display());
    (dir, url)
}

fn assert_store_empty(dir: &tempfile::TempDir) {
    assert_eq!(
        snapshot(dir.path()),
        BTreeMap::new(),
        "the store was written to"
    );
}

#[test]
fn wrong_password() {
    let pg = PgServer::start_with(PgOptions {
        auth: PgAuth::Scram,
        ..PgOptions::default()
    });
    pg.sql("CREATE ROLE repl WITH REPLICATION LOGIN PASSWORD 'right'");
    let (dir, store) = store_dir();
    let output = run(&pg.url("repl", Some("wrong")), &store, &[]);
    assert_fails_with(
        &output,
        &format!(
            "cannot connect to postgres at 127.0.0.1:{}: password authentication failed for user \"repl\" (check the password in the source URL, password_file or PGPASSWORD)",
            pg.port()
        ),
    );
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("wrong"),
        "the password leaked"
    );
    assert_store_empty(&dir);
    assert_eq!(slot_count(&pg), "0");
}

#[test]
fn role_without_replication() {
    let pg = PgServer::start();
    pg.sql("CREATE ROLE plain WITH LOGIN");
    let (dir, store) = store_dir();
    let output = run(&pg.url("plain", None), &store, &[]);
    assert_fails_with(
        &output,
        &format!(
            "cannot connect to postgres at 127.0.0.1:{}: role \"plain\" lacks the REPLICATION attribute (run ALTER ROLE plain REPLICATION as a superuser)",
            pg.port()
        ),
    );
    assert_store_empty(&dir);
    assert_eq!(slot_count(&pg), "0");
}

#[test]
fn wal_level_minimal() {
    let conf = [("wal_level", "minimal"), ("max_wal_senders", "0")];
    let pg = PgServer::start_with(PgOptions {
        conf: conf
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..PgOptions::default()
    });
    let (dir, store) = store_dir();
    let output = run(&pg.url("postgres", None), &store, &[]);
    assert_fails_with(
        &output,
        &format!(
            "cannot connect to postgres at 127.0.0.1:{}: wal_level is minimal, which cannot stream WAL (set wal_level = replica and max_wal_senders > 0 in postgresql.conf, then restart PostgreSQL)",
            pg.port()
        ),
    );
    assert_store_empty(&dir);
}

#[test]
fn max_wal_senders_zero() {
    let pg = PgServer::start_with(PgOptions {
        conf: vec![("max_wal_senders".into(), "0".into())],
        ..PgOptions::default()
    });
    let (dir, store) = store_dir();
    let output = run(&pg.url("postgres", None), &store, &[]);
    assert_fails_with(
        &output,
        &format!(
            "cannot connect to postgres at 127.0.0.1:{}: max_wal_senders is 0, so the server accepts no replication connections (set max_wal_senders > 0 in postgresql.conf, then restart PostgreSQL)",
            pg.port()
        ),
    );
    assert_store_empty(&dir);
    assert_eq!(slot_count(&pg), "0");
}

#[test]
fn unreachable_host() {
    let port = free_port();
    let (dir, store) = store_dir();
    let output = run(
        &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        &store,
        &[],
    );
    assert_fails_with(
        &output,
        &format!(
            "cannot connect to postgres at 127.0.0.1:{port}: connection refused (check the host and port in the source URL and that PostgreSQL is running)"
        ),
    );
    assert_store_empty(&dir);
}

/// A store directory the agent's OS user cannot write (the agent runs as `postgres` here).
#[test]
fn unwritable_store_directory() {
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap(); // owned by root, mode 0700 → make it readable, not writable
    let store_path = dir.path().join("archive");
    std::fs::create_dir(&store_path).unwrap();
    for path in [dir.path(), store_path.as_path()] {
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let output = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(logship_bin())
        .args(["--postgres", &pg.url("postgres", None), "--store"])
        .arg(format!("file://{}", store_path.display()))
        .arg("run")
        .env(
            "LOGSHIP_METRICS_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .env("LOGSHIP_LOG", "warn")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_fails_with(
        &output,
        &format!(
            "store directory {} is not writable: Permission denied (os error 13) (give the agent's user write access to it, or choose another store URL)",
            store_path.display()
        ),
    );
    assert_store_empty_at(&store_path);
    assert_eq!(slot_count(&pg), "0");
}

fn assert_store_empty_at(path: &Path) {
    assert_eq!(snapshot(path), BTreeMap::new(), "the store was written to");
}

#[test]
fn s3_signature_error() {
    let pg = PgServer::start();
    let s3 = S3Server::start();
    let mut env: Vec<(String, String)> = s3
        .env()
        .into_iter()
        .map(|(k, v)| {
            if k == "AWS_SECRET_ACCESS_KEY" {
                (k, "not-the-secret".into())
            } else {
                (k, v)
            }
        })
        .collect();
    env.push(("LOGSHIP_STORE_ENDPOINT".into(), s3.endpoint()));
    env.push(("LOGSHIP_STORE_PATH_STYLE".into(), "true".into()));
    let output = run(&pg.url("postgres", None), &s3.store_url("archive"), &env);
    assert_fails_with(
        &output,
        &format!(
            "S3 rejected the request signature at {} (bucket \"{}\"): SignatureDoesNotMatch (check AWS_SECRET_ACCESS_KEY, AWS_ACCESS_KEY_ID and the region)",
            s3.endpoint(),
            s3.bucket()
        ),
    );
    assert_store_empty_at(&s3.root_dir().join(s3.bucket()));
    assert_eq!(slot_count(&pg), "0");
}

/// A store prefix that already holds another server's archive is refused, untouched.
#[test]
fn store_prefix_of_another_system() {
    let first = PgServer::start();
    let store = TestStore::file();
    let logs = temp_dir("agent");
    let mut agent = logship_tests::agent::Agent::start(
        &[
            "--postgres",
            &first.url("postgres", None),
            "--store",
            &store.url(),
        ],
        &[],
        logs.path(),
    );
    let first_id = first.sql("SELECT system_identifier FROM pg_control_system()");
    let identity = match &store {
        TestStore::File(dir) => dir.path().join("archive/default/identity"),
        TestStore::S3(_) => unreachable!(),
    };
    let started = std::time::Instant::now();
    while !identity.exists() {
        assert!(
            started.elapsed().as_secs() < 30,
            "no identity written:\n{}",
            agent.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (status, _) = agent.sigterm();
    assert!(status.success());
    let TestStore::File(dir) = &store else {
        unreachable!()
    };
    let before = snapshot(dir.path());

    let second = PgServer::start();
    let second_id = second.sql("SELECT system_identifier FROM pg_control_system()");
    let output = run(&second.url("postgres", None), &store.url(), &[]);
    assert_fails_with(
        &output,
        &format!(
            "store {} already holds source \"default\" for postgres system {first_id}, but the server is postgres system {second_id} (give this server its own source name or store prefix)",
            store.url()
        ),
    );
    assert_eq!(snapshot(dir.path()), before, "the existing archive changed");
    assert_eq!(slot_count(&second), "0");
}
