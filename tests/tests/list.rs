//! `logship list` on a store holding real PostgreSQL 15 WAL (the protocol crate's captured
//! segments, see protocol/tests/fixtures/pg15-wal/README.md) and hand-made backup metas:
//! the archived ranges, the gaps and the restorable window, whose end is the newest commit
//! that `pg_waldump` shows in the durable WAL.

use logship::identity::record_identity;
use logship::list::list;
use logship::pg::restore::plan::{RecoveryTarget, TargetTimeline, plan};
use logship::pg::window::load_source;
use logship::store::Store;
use logship::timefmt::parse_time;
use logship_protocol::archive::backup::{BackupId, BackupMeta, CheckpointMode, TablespaceMeta};
use logship_protocol::archive::identity::SourceIdentity;
use logship_protocol::archive::key::{ArchiveKey, SourceName};
use logship_protocol::archive::object::{self, Codec};
use logship_protocol::pg::key::WalKey;
use logship_protocol::pg::{Lsn, SegmentNo, TimelineId, WalSegSize};
use logship_tests::archive::TestStore;
use serde_json::{Value, json};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../protocol/tests/fixtures/pg15-wal"
);
const MIB: u64 = 1 << 20;

fn seg() -> WalSegSize {
    WalSegSize::new(MIB).unwrap()
}

fn tli1() -> TimelineId {
    TimelineId::FIRST
}

/// The content of fixture segment `segno` (timeline 1, 1 MiB segments).
fn fixture_segment(segno: u64) -> Vec<u8> {
    let name = format!("{FIXTURES}/00000001000000000000000{segno}.lz4");
    let file = std::fs::File::open(&name).unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut lz4_flex::frame::FrameDecoder::new(file), &mut bytes).unwrap();
    assert_eq!(bytes.len() as u64, MIB, "{name}");
    bytes
}

/// A commit (or commit prepared) record as `pg_waldump -r Transaction` shows it.
#[derive(Debug, Clone, Copy)]
struct DumpedCommit {
    lsn: Lsn,
    len: u64,
    time: jiff::Timestamp,
}

fn dumped_commits() -> Vec<DumpedCommit> {
    let dump = std::fs::read_to_string(format!("{FIXTURES}/waldump-xact.txt")).unwrap();
    dump.lines()
        .filter_map(|line| {
            let desc = line.split_once("desc: ")?.1;
            if !(desc.starts_with("COMMIT ") || desc.starts_with("COMMIT_PREPARED ")) {
                return None;
            }
            let lsn = line
                .split_once("lsn: ")?
                .1
                .split(',')
                .next()?
                .parse()
                .unwrap();
            let len = line.split_once("/tot):")?.1.split('/').nth(1)?;
            let len = len.split(',').next()?.trim().parse().unwrap();
            let when: Vec<&str> = desc.split(" UTC").next()?.split(' ').collect();
            let [.., date, time] = when.as_slice() else {
                return None;
            };
            let time = parse_time(&format!("{date} {time}")).unwrap();
            Some(DumpedCommit { lsn, len, time })
        })
        .collect()
}

fn backup(start: u64, end: u64, end_time: jiff::Timestamp) -> BackupMeta {
    let start_lsn = Lsn::new(start);
    BackupMeta {
        id: BackupId::new(tli1(), start_lsn),
        label: "test".into(),
        timeline: tli1(),
        start_lsn,
        end_lsn: Lsn::new(end),
        start_time: end_time
            .checked_sub(jiff::SignedDuration::from_secs(3))
            .unwrap(),
        end_time,
        pg_version: "15.18".into(),
        pg_version_num: 150018,
        system_id: 7,
        wal_segment_size: seg(),
        raw_bytes: 4096,
        stored_bytes: 1024,
        tablespaces: vec![TablespaceMeta {
            oid: 0,
            location: None,
            chunks: 0,
            raw_bytes: 4096,
            stored_bytes: 1024,
            chunk_crcs: vec![],
        }],
        manifest: None,
        checkpoint: CheckpointMode::Fast,
    }
}

struct Archive {
    _store: TestStore,
    store: std::sync::Arc<dyn Store>,
    source: SourceName,
}

impl Archive {
    async fn new() -> Archive {
        let test_store = TestStore::file();
        let store = test_store.open().await;
        let source = SourceName::new("main").unwrap();
        let identity = SourceIdentity::Postgres {
            system_id: 7,
            wal_seg_size: seg(),
        };
        record_identity(store.as_ref(), &source, &identity)
            .await
            .unwrap();
        Archive {
            _store: test_store,
            store,
            source,
        }
    }

    async fn put(&self, key: WalKey, content: &[u8]) {
        let stored = object::encode(content, Codec::Lz4);
        self.store
            .put(&key.format(&self.source, seg()), stored.into())
            .await
            .unwrap();
    }

    async fn segment(&self, segno: u64) {
        let key = WalKey::Segment {
            tli: tli1(),
            segno: SegmentNo::new(segno),
        };
        self.put(key, &fixture_segment(segno)).await;
    }

    async fn piece(&self, segno: u64, end: u32) {
        let content = fixture_segment(segno);
        let key = WalKey::Piece {
            tli: tli1(),
            segno: SegmentNo::new(segno),
            start: 0,
            end,
        };
        self.put(key, &content[..end as usize]).await;
    }

    async fn backup(&self, meta: &BackupMeta) {
        let key = ArchiveKey::BackupMeta { id: meta.id };
        let stored = object::encode(&meta.to_json(), Codec::None);
        self.store
            .put(&key.format(&self.source), stored.into())
            .await
            .unwrap();
    }

    async fn list(&self, json: bool) -> String {
        let mut out = Vec::new();
        list(
            self.store.as_ref(),
            std::slice::from_ref(&self.source),
            json,
            &mut out,
        )
        .await
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    async fn list_json(&self) -> Value {
        serde_json::from_str(&self.list(true).await).unwrap()
    }
}

#[tokio::test]
async fn window_ends_at_the_newest_commit_in_the_archive() {
    let commits = dumped_commits();
    let newest = *commits.last().unwrap();
    let archive = Archive::new().await;
    for segno in 7..=9 {
        archive.segment(segno).await;
    }
    let before_all = commits[0]
        .time
        .checked_sub(jiff::SignedDuration::from_secs(60))
        .unwrap();
    let meta = backup(0x70_0028, 0x70_0100, before_all);
    archive.backup(&meta).await;

    let listing = archive.list_json().await;
    let source = &listing["sources"][0];
    assert_eq!(source["name"], "main");
    assert_eq!(source["kind"], "postgres");
    assert_eq!(source["system_id"], "7");
    assert_eq!(source["backups"][0]["id"], "000000010000000000700028");
    assert_eq!(source["backups"][0]["end_position"], "0/700100");
    assert_eq!(
        source["archive"],
        json!([{"timeline_or_server": "1", "from": "0/700000", "to": "0/A00000"}])
    );
    assert_eq!(source["gaps"], json!([]));
    assert_eq!(
        source["window"],
        json!({"start": before_all.to_string(), "end": newest.time.to_string()})
    );

    let text = archive.list(false).await;
    assert!(
        text.contains(&format!(
            "  restorable window: {before_all} .. {}\n",
            newest.time
        )),
        "{text}"
    );

    let loaded = load_source(archive.store.as_ref(), &archive.source)
        .await
        .unwrap();
    let (end_lsn, _) = loaded.summary.newest_commit.unwrap();
    assert_eq!(
        end_lsn.as_u64(),
        (newest.lsn.as_u64() + newest.len).next_multiple_of(8)
    );
    let restore = plan(
        &loaded.summary,
        &loaded.histories,
        RecoveryTarget::Latest,
        TargetTimeline::Latest,
    )
    .unwrap();
    assert_eq!(restore.backup, meta);
    assert_eq!(
        loaded.summary.archived_end(restore.timeline),
        Some(Lsn::new(0xA0_0000))
    );
}

#[tokio::test]
async fn a_commit_crossing_into_the_partial_segment_is_found() {
    // Segment 8 is durable only up to its first commit: the newest durable commit is
    // then the big one that starts in segment 7 and ends in segment 8.
    let commits = dumped_commits();
    let first_in_8 = commits
        .iter()
        .find(|c| c.lsn.as_u64() >= 0x80_0000)
        .unwrap();
    let crossing = *commits
        .iter()
        .rev()
        .find(|c| c.lsn < first_in_8.lsn)
        .unwrap();
    assert!(
        crossing.lsn.as_u64() < 0x80_0000 && crossing.lsn.as_u64() + crossing.len > 0x80_0000,
        "the fixture's last commit before segment 8 crosses into it: {crossing:?}"
    );

    let archive = Archive::new().await;
    archive.segment(7).await;
    let durable = u32::try_from(first_in_8.lsn.as_u64() - 0x80_0000).unwrap();
    archive.piece(8, durable).await;
    let start = commits[0]
        .time
        .checked_sub(jiff::SignedDuration::from_secs(60))
        .unwrap();
    archive.backup(&backup(0x70_0028, 0x70_0100, start)).await;

    let source = &archive.list_json().await["sources"][0];
    assert_eq!(
        source["archive"],
        json!([{"timeline_or_server": "1", "from": "0/700000", "to": first_in_8.lsn.to_string()}])
    );
    assert_eq!(
        source["window"],
        json!({"start": start.to_string(), "end": crossing.time.to_string()})
    );
}

#[tokio::test]
async fn a_gap_moves_the_window_to_the_backup_after_it() {
    let commits = dumped_commits();
    let newest = *commits.last().unwrap();
    let archive = Archive::new().await;
    archive.segment(7).await;
    archive.segment(9).await;
    let early = commits[0]
        .time
        .checked_sub(jiff::SignedDuration::from_secs(60))
        .unwrap();
    archive.backup(&backup(0x70_0028, 0x70_0100, early)).await;

    // The only backup is before the gap: no window.
    let source = &archive.list_json().await["sources"][0];
    assert_eq!(
        source["gaps"],
        json!([{"timeline_or_server": "1", "from": "0/800000", "to": "0/900000"}])
    );
    assert_eq!(source["window"], Value::Null);
    assert!(archive.list(false).await.contains(
        "  restorable window: none (the archived WAL after every backup has a gap or does not reach its end yet; take a new backup with logship backup)\n"
    ));

    let later = newest
        .time
        .checked_sub(jiff::SignedDuration::from_millis(1))
        .unwrap();
    archive.backup(&backup(0x90_0028, 0x90_0050, later)).await;
    let source = &archive.list_json().await["sources"][0];
    assert_eq!(
        source["window"],
        json!({"start": later.to_string(), "end": newest.time.to_string()})
    );
}

#[tokio::test]
async fn no_backup_yet() {
    let archive = Archive::new().await;
    archive.segment(7).await;
    let source = &archive.list_json().await["sources"][0];
    assert_eq!(source["backups"], json!([]));
    assert_eq!(source["window"], Value::Null);
    assert!(archive.list(false).await.ends_with(
        "  restorable window: none (there is no base backup yet; take one with logship backup)\n"
    ));
}

/// DESIGN.md §2: on a store that holds nothing yet, `list --json` prints no source and
/// exits 0; the table says so in a line.
#[test]
fn an_empty_store_lists_no_source() {
    let dir = logship_tests::util::temp_dir("list-empty");
    let store = format!("file://{}", dir.path().display());
    let json = logship_tests::agent::logship(&["list", "--json", "--store", &store], &[]);
    assert!(json.status.success(), "{json:?}");
    assert_eq!(
        String::from_utf8_lossy(&json.stdout).trim(),
        r#"{"sources":[]}"#
    );
    let text = logship_tests::agent::logship(&["list", "--store", &store], &[]);
    assert!(text.status.success(), "{text:?}");
    assert_eq!(
        String::from_utf8_lossy(&text.stdout).trim(),
        format!(
            "store {store} holds no archive yet (run `logship run` first, or check the store URL)"
        )
    );
}

/// `--source` naming a source the store does not hold says which ones it holds.
#[tokio::test]
async fn an_unknown_source_names_the_stored_ones() {
    let test_store = TestStore::file();
    let store = test_store.open().await;
    for name in ["main", "shop"] {
        let identity = SourceIdentity::Postgres {
            system_id: 7,
            wal_seg_size: seg(),
        };
        record_identity(store.as_ref(), &SourceName::new(name).unwrap(), &identity)
            .await
            .unwrap();
    }
    let url = test_store.url();
    let out = logship_tests::agent::logship(&["list", "--source", "nope", "--store", &url], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        format!("error: store {url} holds no source named \"nope\" (it holds: main, shop)")
    );
}
