//! `wal-fetch` with read-ahead, run as a restored server's `restore_command` runs it: a
//! request starts a detached read-ahead worker that spools the segments after the one asked
//! for, later requests are served from the spool, and the spool never serves a segment
//! replay has passed or one it could not verify.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logship::pg::walfetch::ahead;
use logship::pg::walfetch::spool::{SPOOL_DIR, Spool};
use logship::store::Store;
use logship::store::fs::FsStore;
use logship_protocol::archive::identity::SourceIdentity;
use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::object::{self, Codec};
use logship_protocol::pg::key::WalKey;
use logship_protocol::pg::{SegmentNo, TimelineId, WalSegSize, xlog_file_name};
use logship_tests::agent::{last_stderr_line, logship};

const MIB: u64 = 1024 * 1024;

fn seg() -> WalSegSize {
    WalSegSize::new(MIB).unwrap()
}

fn tli() -> TimelineId {
    TimelineId::new(1).unwrap()
}

fn name(segno: u64) -> String {
    xlog_file_name(tli(), SegmentNo::new(segno), seg())
}

fn content(segno: u64) -> Vec<u8> {
    (0..MIB).map(|i| (i as u8) ^ (segno as u8)).collect()
}

fn segment_key(source: &SourceName, segno: u64) -> String {
    WalKey::Segment {
        tli: tli(),
        segno: SegmentNo::new(segno),
    }
    .format(source, seg())
}

/// A file store holding complete segments `segnos` of timeline 1.
async fn store_with(segnos: &[u64]) -> (tempfile::TempDir, Arc<dyn Store>, SourceName) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(FsStore::new(dir.path()).unwrap());
    let source = SourceName::new("main").unwrap();
    let identity = SourceIdentity::Postgres {
        system_id: 7,
        wal_seg_size: seg(),
    };
    logship::identity::record_identity(store.as_ref(), &source, &identity)
        .await
        .unwrap();
    for &segno in segnos {
        let stored = object::encode(&content(segno), Codec::Lz4);
        store
            .put(&segment_key(&source, segno), stored.into())
            .await
            .unwrap();
    }
    (dir, store, source)
}

/// Runs `logship wal-fetch` for segment `segno` into `dest`, as the restore_command does.
fn fetch(store_dir: &Path, segno: u64, dest: &Path, prefetch: usize) -> Output {
    let url = format!("file://{}", store_dir.display());
    fetch_from(&url, &[], segno, dest, prefetch)
}

/// [`fetch`] from the store at `url`, with `env` for reaching it.
fn fetch_from(
    url: &str,
    env: &[(String, String)],
    segno: u64,
    dest: &Path,
    prefetch: usize,
) -> Output {
    logship(
        &[
            "--store",
            url,
            "wal-fetch",
            &name(segno),
            &dest.display().to_string(),
            "--prefetch",
            &prefetch.to_string(),
        ],
        env,
    )
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_found(out: &Output, dest: &Path, segno: u64) {
    assert_exit(out, 0);
    assert_eq!(std::fs::read(dest).unwrap(), content(segno));
}

/// The segments and the absence markers in the spool of `pg_wal`, sorted.
fn spooled(pg_wal: &Path) -> (Vec<String>, Vec<String>) {
    let mut segments = Vec::new();
    let mut absent = Vec::new();
    if let Ok(entries) = std::fs::read_dir(pg_wal.join(SPOOL_DIR)) {
        for entry in entries {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if let Some(name) = name.strip_suffix(".absent") {
                absent.push(name.to_owned());
            } else if name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                segments.push(name);
            }
        }
    }
    segments.sort();
    absent.sort();
    (segments, absent)
}

/// Waits until the spool of `pg_wal` holds exactly `segments` and `absent`.
fn wait_spooled(pg_wal: &Path, segments: &[u64], absent: &[u64]) {
    let expected = (
        segments.iter().map(|&s| name(s)).collect::<Vec<_>>(),
        absent.iter().map(|&s| name(s)).collect::<Vec<_>>(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = spooled(pg_wal);
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the spool holds {now:?}, not {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn data_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let data = tempfile::tempdir().unwrap();
    let pg_wal = data.path().join("pg_wal");
    std::fs::create_dir(&pg_wal).unwrap();
    let dest = pg_wal.join("RECOVERYXLOG");
    (data, pg_wal, dest)
}

#[tokio::test]
async fn the_worker_spools_ahead_of_replay_and_requests_are_served_from_disk() {
    let (store_dir, store, source) = store_with(&[3, 4, 5, 6, 7]).await;
    let (_data, pg_wal, dest) = data_dir();

    assert_found(&fetch(store_dir.path(), 3, &dest, 3), &dest, 3);
    wait_spooled(&pg_wal, &[4, 5, 6], &[]);

    // Served from the spool: the store no longer needs to hold it. The worker moves on.
    store.delete(&segment_key(&source, 4)).await.unwrap();
    assert_found(&fetch(store_dir.path(), 4, &dest, 3), &dest, 4);
    wait_spooled(&pg_wal, &[5, 6, 7], &[]);

    // A spooled segment is served without opening the store: even an unreachable one.
    let unreachable_env = [
        ("LOGSHIP_STORE_ENDPOINT", "http://127.0.0.1:9"),
        ("AWS_ACCESS_KEY_ID", "unused"),
        ("AWS_SECRET_ACCESS_KEY", "unused"),
        ("AWS_REGION", "us-east-1"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let unreachable = fetch_from("s3://gone/archive", &unreachable_env, 5, &dest, 3);
    assert_found(&unreachable, &dest, 5);
    wait_spooled(&pg_wal, &[6, 7], &[8]);

    // Replay jumped ahead (say, to a new timeline's segments): what it passed is dropped,
    // and past the archive's end the worker leaves a marker, so the request reads the store.
    assert_found(&fetch(store_dir.path(), 7, &dest, 3), &dest, 7);
    wait_spooled(&pg_wal, &[], &[8, 9, 10]);
    assert_exit(&fetch(store_dir.path(), 8, &dest, 3), 1);
    // PostgreSQL asks again for the file that ended the archive. The marker still answers,
    // so the request does not wait for the worker to leave.
    assert_exit(&fetch(store_dir.path(), 8, &dest, 3), 1);
    assert!(
        ahead::is_running(&Spool::beside(&dest, seg())),
        "the repeated request waited until the read-ahead worker left"
    );
}

#[tokio::test]
async fn only_verified_complete_segments_are_spooled() {
    let (store_dir, store, source) = store_with(&[3, 4]).await;
    // Segment 5 is damaged in the store, segment 6 is still in progress (a piece).
    let key5 = segment_key(&source, 5);
    let mut damaged = object::encode(&content(5), Codec::None);
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    let reason = object::decode(&damaged).unwrap_err().to_string();
    store.put(&key5, damaged.into()).await.unwrap();
    let piece = WalKey::Piece {
        tli: tli(),
        segno: SegmentNo::new(6),
        start: 0,
        end: 0x100,
    }
    .format(&source, seg());
    store
        .put(&piece, object::encode(&[9; 0x100], Codec::None).into())
        .await
        .unwrap();

    let (_data, pg_wal, dest) = data_dir();
    assert_found(&fetch(store_dir.path(), 3, &dest, 4), &dest, 3);
    wait_spooled(&pg_wal, &[4], &[5, 6, 7]);
    assert_found(&fetch(store_dir.path(), 4, &dest, 4), &dest, 4);

    // The damaged segment is reported by the request for it, naming the object.
    let out = fetch(store_dir.path(), 5, &dest, 4);
    assert_exit(&out, 255);
    assert_eq!(
        last_stderr_line(&out),
        format!(
            "error: object {key5} is corrupt: {reason} (the archived copy is damaged; restore to a target before it, or recover the object from a replica of the store)"
        )
    );
    // The segment in progress is served from its pieces, padded with zeros.
    assert_exit(&fetch(store_dir.path(), 6, &dest, 4), 0);
    let served = std::fs::read(&dest).unwrap();
    assert_eq!(served.len() as u64, MIB);
    assert!(served[..0x100].iter().all(|&b| b == 9) && served[0x100..].iter().all(|&b| b == 0));
}

#[tokio::test]
async fn the_worker_leaves_when_the_server_stops() {
    let (store_dir, _store, _source) = store_with(&[3, 4, 5]).await;
    let (data, pg_wal, dest) = data_dir();
    // A server in recovery, as far as the worker can tell.
    std::fs::write(data.path().join("postmaster.pid"), "1\n").unwrap();
    std::fs::write(data.path().join("recovery.signal"), "").unwrap();
    assert_found(&fetch(store_dir.path(), 3, &dest, 2), &dest, 3);
    wait_spooled(&pg_wal, &[4, 5], &[]);
    let spool = Spool::of_data_dir(data.path(), seg());
    assert!(
        ahead::is_running(&spool),
        "the worker left while the server runs"
    );

    std::fs::remove_file(data.path().join("postmaster.pid")).unwrap();
    assert!(
        ahead::wait_stopped(&spool, Duration::from_secs(2)).await,
        "the worker outlived the server"
    );
}

#[tokio::test]
async fn prefetch_zero_leaves_no_spool() {
    let (store_dir, _store, _source) = store_with(&[3, 4]).await;
    let (_data, pg_wal, dest) = data_dir();
    assert_found(&fetch(store_dir.path(), 3, &dest, 0), &dest, 3);
    assert!(!pg_wal.join(SPOOL_DIR).exists());
}

/// DEST is written by what it is: standard output for `-`, through a symbolic link to its
/// target, through a FIFO without replacing it; a directory is refused in one line.
#[tokio::test]
async fn dest_is_written_as_what_it_is() {
    let (store_dir, _store, _source) = store_with(&[3]).await;
    let out = fetch(store_dir.path(), 3, Path::new("-"), 8);
    assert_exit(&out, 0);
    assert!(out.stdout == content(3), "standard output differs");

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_found(&fetch(store_dir.path(), 3, &link, 8), &target, 3);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    let fifo = dir.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    assert_exit(&fetch(store_dir.path(), 3, &fifo, 8), 0);
    assert!(
        reader.join().unwrap() == content(3),
        "the FIFO's reader got other bytes"
    );
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &std::fs::metadata(&fifo).unwrap().file_type()
    ));

    let out = fetch(store_dir.path(), 3, dir.path(), 8);
    assert_exit(&out, 255);
    assert_eq!(
        logship_tests::agent::last_stderr_line(&out),
        format!(
            "error: cannot write {}: it is a directory: give the path of a file, a FIFO, or - for standard output (check that the destination directory exists and is writable)",
            dir.path().display()
        )
    );
}
