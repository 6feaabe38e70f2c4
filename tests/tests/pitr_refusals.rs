//! Acceptance: a restore that cannot reach its target says why in one exact line. Targets
//! outside the restorable window and malformed times are refused before DIR is created; a
//! damaged `backup_manifest` object is found before anything is unpacked; a damaged WAL
//! object fails the restored server's recovery, no server is left running, and DIR is
//! removed, its server log kept beside it; the window then ends before a damaged piece
//! instead of `list` failing.

use std::net::TcpStream;
use std::path::Path;
use std::process::Output;

use logship::pg::catalog::WalCatalog;
use logship::pg::window::load_source;
use logship::store::Store;
use logship_protocol::archive::key::ArchiveKey;
use logship_protocol::archive::object;
use logship_protocol::pg::key::WalKey;
use logship_protocol::pg::{Lsn, xlog_file_name};
use logship_tests::agent::{last_stderr_line, logship};
use logship_tests::archive::TestStore;
use logship_tests::pg::PgServer;
use logship_tests::restore::{Archiving, default_source, restore, server_running, wait_archived};
use logship_tests::util::{free_port, temp_dir};

/// Flips one bit in the middle of the stored object `key`; returns the original bytes and
/// why a reader now refuses it.
async fn flip_a_bit(store: &dyn Store, key: &str) -> (bytes::Bytes, String) {
    let original = store.get(key).await.unwrap();
    let mut damaged = original.to_vec();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x10;
    let reason = object::decode(&damaged).unwrap_err().to_string();
    store.put(key, damaged.into()).await.unwrap();
    (original, reason)
}

/// Asserts a failed restore: exit status `code`, exactly `expected` as its error line, and
/// no DIR.
fn assert_refused(out: &Output, code: i32, expected: &str, to: &Path) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(last_stderr_line(out), expected);
    assert!(!to.exists(), "the failed restore created {}", to.display());
}

/// Asserts that `restore --latest --start` fails when recovery asks for WAL file `file`,
/// whose object `key` is damaged for `reason`, that no server is left running on `to`, and
/// that `to` is gone: only the server log the error points to is kept, beside it.
fn assert_recovery_fails_on(store: &TestStore, to: &Path, file: &str, key: &str, reason: &str) {
    let port = free_port();
    let kept_log = to.with_extension("logship-restore.log");
    let out = restore(
        store,
        to,
        &["--latest", "--start", "--port", &port.to_string()],
    );
    let expected = format!(
        "error: recovery failed: could not restore file \"{file}\" from archive: child process exited with exit code 255; \
         the restore_command said: object {key} is corrupt: {reason} (the archived copy is damaged; restore to a target before it, \
         or recover the object from a replica of the store) (the restored directory was removed; \
         the server log is {})",
        kept_log.display()
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(last_stderr_line(&out), expected);
    assert!(
        !server_running(to),
        "a server is left running on {}",
        to.display()
    );
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(!to.exists(), "the failed restore left {}", to.display());
    let log = std::fs::read_to_string(&kept_log).unwrap();
    assert!(log.contains(&format!("\"{file}\"")), "{log}");
    std::fs::remove_file(&kept_log).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_name_the_cause_and_the_fix_exactly() {
    let pg = PgServer::start();
    pg.sql("CREATE TABLE t AS SELECT g AS i FROM generate_series(1, 1000) g");
    let store = TestStore::file();
    let mut archiving = Archiving::start(&pg, &store, &[]).await;
    pg.sql("INSERT INTO t SELECT generate_series(1, 500)");
    wait_archived(&pg, &store).await;
    // The archive stays as it is from here on.
    let (status, _) = archiving.agent.sigterm();
    assert!(status.success(), "{}", archiving.agent.log());

    let opened = store.open().await;
    let source = default_source();
    let loaded = load_source(opened.as_ref(), &source).await.unwrap();
    let window = loaded.summary.window.clone().unwrap();
    let dir = temp_dir("refusals");
    let to = dir.path().join("restored");

    // Before the oldest backup, and after the newest commit.
    let second = jiff::SignedDuration::from_secs(1);
    let before = window.start.checked_sub(second).unwrap();
    let out = restore(&store, &to, &["--target-time", &before.to_string()]);
    let expected = format!(
        "error: target time {before} is before the restorable window {} .. {} (pick a time inside it; see logship list)",
        window.start, window.end
    );
    assert_refused(&out, 1, &expected, &to);
    let after = window.end.checked_add(second).unwrap();
    let out = restore(&store, &to, &["--target-time", &after.to_string()]);
    let expected = format!(
        "error: target time {after} is after the restorable window {} .. {} (pick a time inside it; see logship list)",
        window.start, window.end
    );
    assert_refused(&out, 1, &expected, &to);

    // A time without an offset could be anyone's local time: a usage error, exit 2. clap
    // adds its hint line after the error line.
    let out = restore(&store, &to, &["--target-time", "2026-11-21T10:15:00"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().next().unwrap(),
        "error: invalid value '2026-11-21T10:15:00' for '--target-time <TIME>': invalid time \"2026-11-21T10:15:00\" (use RFC 3339 like 2026-11-21T10:15:00Z, or \"2026-11-21 10:15:00\" in UTC)"
    );
    assert!(!to.exists());

    // A damaged WAL segment the restore needs: the first of the backup `--latest` restores
    // (the newest). Recovery fails on it, the error names it, and the server is not left
    // running.
    let backup = loaded
        .summary
        .backups
        .iter()
        .max_by_key(|b| b.end_lsn)
        .unwrap();
    let seg = backup.wal_segment_size;
    let segno = backup.start_lsn.segment_no(seg);
    let wal_key = WalKey::Segment {
        tli: backup.timeline,
        segno,
    }
    .format(&source, seg);
    let (original, reason) = flip_a_bit(opened.as_ref(), &wal_key).await;
    assert_recovery_fails_on(
        &store,
        &to,
        &xlog_file_name(backup.timeline, segno, seg),
        &wal_key,
        &reason,
    );
    opened.put(&wal_key, original).await.unwrap();

    // A damaged piece of the segment in progress: `--latest` fails on it the same way, and
    // the window now ends before it instead of `list` failing.
    let end = WalCatalog::load(opened.as_ref(), &source, seg)
        .await
        .unwrap()
        .newest_end()
        .unwrap();
    let piece = end.chain.last().unwrap();
    let segno = Lsn::new(end.end.as_u64() - 1).segment_no(seg);
    let piece_key = WalKey::Piece {
        tli: end.tli,
        segno,
        start: piece.start(),
        end: piece.end(),
    }
    .format(&source, seg);
    let (original, reason) = flip_a_bit(opened.as_ref(), &piece_key).await;
    assert_recovery_fails_on(
        &store,
        &to,
        &xlog_file_name(end.tli, segno, seg),
        &piece_key,
        &reason,
    );
    let listed = logship(&["--store", &store.url(), "list", "--json"], &store.env());
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let end: jiff::Timestamp = listed["sources"][0]["window"]["end"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(end < window.end, "the window still ends at {end}");
    opened.put(&piece_key, original).await.unwrap();

    // A damaged backup_manifest: refused before anything is unpacked.
    let manifest_key = ArchiveKey::BackupManifest { id: backup.id }.format(&source);
    let (_, reason) = flip_a_bit(opened.as_ref(), &manifest_key).await;
    let out = restore(&store, &to, &["--latest"]);
    let expected = format!(
        "error: object {manifest_key} is corrupt: {reason} (the stored backup is damaged; pick a target another backup reaches, see logship list, or take a new backup)"
    );
    assert_refused(&out, 1, &expected, &to);
}
