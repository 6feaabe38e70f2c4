//! MariaDB failover: a replica (GTID replication, `log_slave_updates`) is promoted, the
//! old primary stopped, and `logship run`, now pointed at the new primary, continues the
//! same archive by GTID under the next server number. A server of the domain that lacks
//! archived transactions is refused, with nothing written.

use std::path::Path;
use std::time::{Duration, Instant};

use logship::archive::read_object;
use logship::mysql::catalog::BinlogCatalog;
use logship::mysql::read::ArchivedFile;
use logship::store::Store;
use logship_protocol::archive::key::SourceName;
use logship_protocol::mysql::index::IndexEntry;
use logship_protocol::mysql::key::{ServerNo, switch_key};
use logship_protocol::mysql::switch::ServerSwitch;
use logship_protocol::mysql::{
    BinlogFileName, BinlogPos, BinlogReader, TransactionTracker, TrxGtid,
};
use logship_tests::agent::{Agent, last_stderr_line, logship};
use logship_tests::archive::TestStore;
use logship_tests::mariadb::{MariaDb, MariaDbOptions, REPL_PRIVILEGES};
use logship_tests::util::{free_port, temp_dir};

fn source() -> SourceName {
    SourceName::new("default").unwrap()
}

fn second() -> ServerNo {
    ServerNo::new(2).unwrap()
}

fn start_agent(db: &MariaDb, store: &TestStore, log_dir: &Path) -> Agent {
    let mut env = store.env();
    env.push((
        "LOGSHIP_SOURCE_DEFAULT_FLUSH_INTERVAL".into(),
        "200ms".into(),
    ));
    Agent::start(
        &[
            "--mysql",
            &db.url("logship", Some("secret")),
            "--store",
            &store.url(),
        ],
        &env,
        log_dir,
    )
}

/// A primary and a replica that follows it by GTID and logs what it applies.
async fn primary_and_replica() -> (MariaDb, MariaDb) {
    let primary = MariaDb::start(MariaDbOptions::default());
    let replica = MariaDb::start_replica_of(
        &primary,
        MariaDbOptions {
            server_id: 2,
            log_slave_updates: true,
            ..MariaDbOptions::default()
        },
    )
    .await;
    // Created on the primary, so the replica has the same account.
    primary
        .create_user("logship", "secret", REPL_PRIVILEGES)
        .await;
    primary
        .exec("CREATE DATABASE app; CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT)")
        .await;
    (primary, replica)
}

fn inserts(ids: std::ops::Range<u32>) -> impl Iterator<Item = String> {
    ids.map(|id| format!("INSERT INTO app.t VALUES ({id}, REPEAT('f', 500))"))
}

/// One archived file with its objects, read back through the agent's reader.
async fn archived(
    store: &dyn Store,
    catalog: &BinlogCatalog,
    server: ServerNo,
) -> Vec<(String, Vec<u8>, Vec<IndexEntry>)> {
    let source = source();
    let mut files = Vec::new();
    for (file, objects) in catalog.files(server) {
        let archived = ArchivedFile {
            source: &source,
            server,
            file,
            objects,
        };
        let bytes = archived.bytes(store).await.unwrap().unwrap_or_default();
        let index = archived.index(store).await.unwrap();
        files.push((file.to_string(), bytes, index));
    }
    files
}

/// The GTIDs the archive lists, server after server, file after file.
async fn archived_gtids(store: &dyn Store) -> Vec<String> {
    let catalog = BinlogCatalog::load(store, &source()).await.unwrap();
    let mut gtids = Vec::new();
    for server in catalog.servers() {
        for (_, _, index) in archived(store, &catalog, server).await {
            gtids.extend(index.into_iter().filter_map(|e| e.gtid));
        }
    }
    gtids
}

/// Waits until the archive's indexes list `gtid`.
async fn wait_archived(store: &dyn Store, gtid: &str, agent: &Agent) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !archived_gtids(store).await.iter().any(|g| g == gtid) {
        assert!(
            Instant::now() < deadline,
            "{gtid} not archived within 60 s; agent log:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The position just past the transaction with `gtid` in a server's binlog file, read
/// from the file itself.
fn end_of(name: &str, bytes: &[u8], gtid: &str) -> Option<BinlogPos> {
    let file = BinlogFileName::new(name).unwrap();
    let mut tracker = TransactionTracker::new();
    BinlogReader::read_all(bytes)
        .unwrap()
        .iter()
        .find_map(|event| {
            let trx = tracker.push(event, &BinlogPos::new(file.clone(), event.end_offset()))?;
            match trx.gtid {
                TrxGtid::MariaDb(g) if g.to_string() == gtid => Some(trx.end),
                _ => None,
            }
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_continues_the_archive_by_gtid() {
    let (primary, replica) = primary_and_replica().await;
    let test_store = TestStore::file();
    let logs = temp_dir("mysql-failover");
    let mut agent = start_agent(&primary, &test_store, logs.path());
    let store = test_store.open().await;

    let mut committed = primary.commit_each(inserts(0..20)).await;
    // The replica's second file will hold the takeover point.
    replica.wait_caught_up(&primary).await;
    replica.exec("FLUSH BINARY LOGS").await;
    primary.exec("FLUSH BINARY LOGS").await;
    committed.extend(primary.commit_each(inserts(20..40)).await);
    let last_archived = committed.last().unwrap().clone();
    wait_archived(store.as_ref(), &last_archived, &agent).await;
    let (status, _) = agent.sigterm();
    assert!(status.success(), "agent log:\n{}", agent.log());

    // The agent is down; the primary keeps committing and only the replica gets these.
    committed.extend(primary.commit_each(inserts(40..60)).await);
    replica.wait_caught_up(&primary).await;
    primary.stop();
    replica.promote().await;

    // The configuration now names the new primary: same store, same source name.
    let mut agent = start_agent(&replica, &test_store, logs.path());
    committed.extend(replica.commit_each(inserts(60..100)).await);
    replica.exec("FLUSH BINARY LOGS").await;
    committed.extend(replica.commit_each(inserts(100..110)).await);
    wait_archived(store.as_ref(), committed.last().unwrap(), &agent).await;
    let (status, _) = agent.sigterm();
    assert!(status.success(), "agent log:\n{}", agent.log());

    // The switch record: server 2 is the replica, taking over just past the last
    // transaction archived from the primary, at the same transaction in its own binlog.
    let switch = read_object(store.as_ref(), &switch_key(&source(), second()))
        .await
        .unwrap()
        .expect("a switch record for server 2");
    let switch = ServerSwitch::parse(&switch).unwrap();
    assert_eq!(switch.server_id, 2);
    assert_eq!(switch.gtid_pos.to_string(), last_archived);
    let catalog = BinlogCatalog::load(store.as_ref(), &source())
        .await
        .unwrap();
    assert_eq!(
        catalog.servers().collect::<Vec<_>>(),
        [ServerNo::FIRST, second()]
    );
    let old = archived(store.as_ref(), &catalog, ServerNo::FIRST).await;
    let (old_last, old_bytes, _) = old.last().unwrap();
    assert_eq!(
        Some(switch.previous_end.clone()),
        end_of(old_last, old_bytes, &last_archived),
        "previous_end is where the last archived transaction ends on the primary"
    );
    assert_eq!(switch.start.file().as_str(), "binlog.000002");
    assert_eq!(
        Some(switch.start.clone()),
        end_of(
            "binlog.000002",
            &replica.binlog_file("binlog.000002"),
            &last_archived
        ),
        "start is where the same transaction ends on the replica"
    );
    assert_eq!(
        replica
            .query_value(&format!(
                "SELECT BINLOG_GTID_POS('{}', {})",
                switch.start.file(),
                switch.start.offset()
            ))
            .await,
        switch.gtid_pos.to_string(),
        "the server maps start to the recorded GTID state"
    );

    // Server 1's files are the old primary's, byte for byte: whole where it closed them
    // while the agent ran, the durable prefix of the one it was writing.
    assert!(
        old.len() >= 2,
        "{:?}",
        old.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    for (name, bytes, _) in &old {
        let server = primary.binlog_file(name);
        if catalog
            .file(ServerNo::FIRST, &BinlogFileName::new(name).unwrap())
            .unwrap()
            .complete
        {
            assert!(
                bytes == &server,
                "server 1's {name} differs from the old primary's"
            );
        } else {
            assert!(
                server.starts_with(bytes),
                "server 1's {name} is not a prefix of the old primary's"
            );
        }
    }
    // Server 2's files are the new primary's from the takeover file on; the ones it closed
    // are stored whole.
    let new = archived(store.as_ref(), &catalog, second()).await;
    let names: Vec<&str> = new.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["binlog.000002", "binlog.000003"]);
    let (name, bytes, _) = &new[0];
    assert!(
        bytes == &replica.binlog_file(name),
        "server 2's {name} differs from the new primary's"
    );

    // Taking the switch into account, the indexes list every transaction exactly once,
    // in order: the old primary's up to the takeover, the replica's after it.
    let gtids = archived_gtids(store.as_ref()).await;
    let last_seq: u64 = committed
        .last()
        .unwrap()
        .rsplit('-')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let old_seq: u64 = committed[59].rsplit('-').next().unwrap().parse().unwrap();
    let expected: Vec<String> = (1..=last_seq)
        .map(|seq| format!("0-{}-{seq}", if seq <= old_seq { 1 } else { 2 }))
        .collect();
    assert_eq!(gtids, expected);
    let index_of = |gtid: &String| gtids.iter().position(|g| g == gtid);
    let positions: Vec<_> = committed.iter().map(index_of).collect();
    assert!(
        positions.iter().all(Option::is_some),
        "every commit is archived"
    );
    assert!(positions.is_sorted(), "in commit order");
    let server_2_index: Vec<String> = new
        .iter()
        .flat_map(|(_, _, index)| index.iter().filter_map(|e| e.gtid.clone()))
        .collect();
    assert_eq!(
        server_2_index.first(),
        committed.get(40),
        "server 2's index starts just after the takeover point"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_lacks_archived_transactions_is_refused() {
    let (primary, stale) = primary_and_replica().await;
    stale.wait_caught_up(&primary).await;
    stale.exec("STOP SLAVE").await;
    let stale_pos = stale.gtid_binlog_pos().await;

    let test_store = TestStore::file();
    let logs = temp_dir("mysql-failover-refused");
    let mut agent = start_agent(&primary, &test_store, logs.path());
    let store = test_store.open().await;
    let committed = primary.commit_each(inserts(0..10)).await;
    let last = committed.last().unwrap();
    wait_archived(store.as_ref(), last, &agent).await;
    agent.sigterm();
    let before = store.list("").await.unwrap();

    let mut env = test_store.env();
    env.push((
        "LOGSHIP_METRICS_LISTEN".into(),
        format!("127.0.0.1:{}", free_port()),
    ));
    let out = logship(
        &[
            "--mysql",
            &stale.url("logship", Some("secret")),
            "--store",
            &test_store.url(),
            "run",
        ],
        &env,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        last_stderr_line(&out),
        format!(
            "error: source default: mysql at 127.0.0.1:{} (server_id 2) cannot take over source \
             \"default\": its binlog lacks transaction {last}, the last one archived (its \
             gtid_binlog_pos is \"{stale_pos}\") (point the source at a server that has \
             replicated everything archived, or give this server its own source name or store \
             prefix)",
            stale.port()
        )
    );
    let after = store.list("").await.unwrap();
    assert_eq!(
        after.iter().map(|o| (&o.key, o.size)).collect::<Vec<_>>(),
        before.iter().map(|o| (&o.key, o.size)).collect::<Vec<_>>(),
        "nothing is written"
    );
}
