//! What a MySQL source's archive holds, read back independently of the agent, and
//! comparisons with the server's own binlog files.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use logship::archive::read_object;
use logship::mysql::catalog::{BinlogCatalog, FileObjects};
use logship::store::Store;
use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::pieces::PieceRange;
use logship_protocol::mysql::index::{self, IndexEntry};
use logship_protocol::mysql::key::{BinlogKey, ServerNo};
use logship_protocol::mysql::{BinlogFileName, BinlogPos, BinlogReader, TransactionTracker};

use crate::agent::{Agent, logship, logship_within};
use crate::archive::TestStore;
use crate::mariadb::MariaDb;
use crate::util::free_port;

/// The source an inline `--mysql URL` is archived as.
pub fn inline_source() -> SourceName {
    SourceName::new("default").unwrap()
}

/// Starts `logship run --mysql URL --store …` shipping the file in progress every
/// `flush_interval`, with extra environment `env`; it logs to `log_dir/agent.log`.
pub fn start_mysql_agent(
    url: &str,
    store: &TestStore,
    flush_interval: &str,
    env: &[(String, String)],
    log_dir: &Path,
) -> Agent {
    let mut all = store.env();
    all.push((
        "LOGSHIP_SOURCE_DEFAULT_FLUSH_INTERVAL".into(),
        flush_interval.into(),
    ));
    all.extend_from_slice(env);
    Agent::start(&["--mysql", url, "--store", &store.url()], &all, log_dir)
}

/// Runs `logship run --mysql URL --store …` that must end by itself (on bad input),
/// with extra environment `env`; fails the test if it runs for 60 s.
pub fn run_mysql_once(url: &str, store: &TestStore, env: &[(String, String)]) -> Output {
    let mut all = store.env();
    all.push((
        "LOGSHIP_METRICS_LISTEN".into(),
        format!("127.0.0.1:{}", free_port()),
    ));
    all.extend_from_slice(env);
    logship_within(
        &["--mysql", url, "--store", &store.url(), "run"],
        &all,
        Duration::from_secs(60),
    )
}

/// How far the archive holds binlog file `name` of the first server: its length when
/// complete, else the end of its durable pieces; 0 when nothing of it is stored.
pub async fn durable_len(store: &dyn Store, name: &str) -> u64 {
    let catalog = BinlogCatalog::load(store, &inline_source()).await.unwrap();
    let file = BinlogFileName::new(name).unwrap();
    catalog
        .file(ServerNo::FIRST, &file)
        .and_then(|objects| objects.durable_len())
        .map_or(0, u64::from)
}

/// A binlog file of the first server as archived: the complete object, or its pieces
/// from offset 0, as a file in progress or a long complete file is stored (empty when
/// only the file's name is known).
pub async fn archived_file(store: &dyn Store, name: &str) -> Option<Vec<u8>> {
    let source = inline_source();
    let file = BinlogFileName::new(name).unwrap();
    let catalog = BinlogCatalog::load(store, &source).await.unwrap();
    let objects = catalog.file(ServerNo::FIRST, &file)?;
    if objects.complete {
        let key = BinlogKey::File {
            server: ServerNo::FIRST,
            file,
        }
        .format(&source);
        return read_object(store, &key).await.unwrap();
    }
    let mut bytes = Vec::new();
    for range in objects.chain() {
        let key = BinlogKey::Piece {
            server: ServerNo::FIRST,
            file: file.clone(),
            range,
        }
        .format(&source);
        bytes.extend(read_object(store, &key).await.unwrap()?);
    }
    Some(bytes)
}

/// The transactions the archive's index lists for a complete file: its whole-file index,
/// or the indexes of its pieces in order when it is stored as pieces.
pub async fn archived_index(store: &dyn Store, name: &str) -> Vec<IndexEntry> {
    let file = BinlogFileName::new(name).unwrap();
    let catalog = BinlogCatalog::load(store, &inline_source()).await.unwrap();
    let objects = catalog.file(ServerNo::FIRST, &file).unwrap();
    let len = objects.complete_len().expect("a complete file");
    let ranges = match objects.chain() {
        chain if chain.is_empty() => vec![PieceRange::new(0, len).unwrap()],
        chain => chain,
    };
    let mut entries = Vec::new();
    for range in ranges {
        let key = BinlogKey::Index {
            server: ServerNo::FIRST,
            file: file.clone(),
            range,
        }
        .format(&inline_source());
        let content = read_object(store, &key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no index {key}"));
        entries.extend(index::parse(&content).unwrap());
    }
    entries
}

/// Whether the objects a complete file's final form supersedes are deleted: every piece of
/// a file stored whole; every piece off the final chain of a file stored as pieces.
fn superseded_gone(objects: &FileObjects) -> bool {
    if objects.complete {
        objects.pieces.is_empty()
    } else {
        objects.pieces.len() == objects.chain().len()
    }
}

/// The binlog files the archive holds complete for the first server, in order.
pub async fn complete_files(store: &dyn Store) -> Vec<String> {
    let catalog = BinlogCatalog::load(store, &inline_source()).await.unwrap();
    catalog
        .files(ServerNo::FIRST)
        .filter(|(_, objects)| objects.complete_len().is_some() && superseded_gone(objects))
        .map(|(name, _)| name.to_string())
        .collect()
}

/// Waits until every file the server has closed is stored complete. Fails after 60 s, or
/// at once when the agent exits, with the agent's log.
pub async fn wait_closed_files_archived(
    db: &MariaDb,
    store: &dyn Store,
    agent: &mut Agent,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logs = db.binary_logs().await;
        let closed: Vec<String> = logs[..logs.len() - 1]
            .iter()
            .map(|(f, _)| f.clone())
            .collect();
        let complete = complete_files(store).await;
        if closed.iter().all(|name| complete.contains(name)) {
            return closed;
        }
        assert!(
            agent.is_running(),
            "the agent exited before the closed binlogs {closed:?} were archived; its log:\n{}",
            agent.log()
        );
        if Instant::now() >= deadline {
            let catalog = BinlogCatalog::load(store, &inline_source()).await.unwrap();
            let objects: Vec<_> = catalog.files(ServerNo::FIRST).collect();
            panic!(
                "closed binlogs {closed:?} not archived completely within 60 s (complete: \
                 {complete:?}; stored: {objects:?}); agent log:\n{}",
                agent.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asserts that every binlog file the server has closed is archived byte for byte, with
/// an index that lists each committed transaction once; returns how many transactions.
pub async fn assert_closed_files_identical(
    db: &MariaDb,
    store: &dyn Store,
    closed: &[String],
) -> usize {
    let mut transactions = 0;
    for name in closed {
        let server = db.binlog_file(name);
        let archived = archived_file(store, name).await.unwrap();
        assert!(
            archived == server,
            "{name}: archived {} bytes, the server's file {} bytes",
            archived.len(),
            server.len()
        );
        let index = archived_index(store, name).await;
        assert_eq!(
            index.iter().map(|e| u64::from(e.end)).collect::<Vec<_>>(),
            committed_ends(name, &server),
            "{name}: the index lists every transaction exactly once"
        );
        transactions += index.len();
    }
    transactions
}

/// The committed transactions of a binlog file, by their end offsets, read independently.
pub fn committed_ends(name: &str, bytes: &[u8]) -> Vec<u64> {
    let file = BinlogFileName::new(name).unwrap();
    let mut tracker = TransactionTracker::new();
    BinlogReader::read_all(bytes)
        .unwrap()
        .iter()
        .filter_map(|event| {
            tracker
                .push(event, &BinlogPos::new(file.clone(), event.end_offset()))
                .map(|t| t.end.offset())
        })
        .collect()
}

/// Runs `logship binlog-fetch FILE DEST` and checks its exit status.
pub fn binlog_fetch(store: &TestStore, file: &str, dest: &Path, status: i32) {
    let dest = dest.to_str().unwrap();
    let out = logship(
        &["--store", &store.url(), "binlog-fetch", file, dest],
        &store.env(),
    );
    assert_eq!(out.status.code(), Some(status), "{out:?}");
}

/// The FORMAT_DESCRIPTION's flags, at file offset 4 + 17.
const FDE_FLAGS: usize = 21;

/// Compares a prefix of a file the server still writes with the archived one. They differ
/// only in the FORMAT_DESCRIPTION: on disk it carries the in-use flag, which the server
/// clears when it closes the file and never sends; the CRC covers the event as if it were clear.
pub fn assert_live_prefix_equal(archived: &[u8], server: &[u8]) {
    let fde_end = u32::from_le_bytes(server[4 + 13..4 + 17].try_into().unwrap()) as usize;
    assert_eq!(
        server[FDE_FLAGS] & 1,
        1,
        "the live file's FDE carries the in-use flag"
    );
    assert_eq!(
        archived[FDE_FLAGS] & 1,
        0,
        "the archived FDE is as in a closed file"
    );
    let mut closed = server[..fde_end].to_vec();
    closed[FDE_FLAGS] &= !1;
    assert_eq!(archived[..fde_end], closed[..]);
    assert!(
        archived[fde_end..] == server[fde_end..],
        "the events after the FDE differ"
    );
}
