//! The quickstart's MariaDB part: a throwaway MariaDB streamed into the same store as a
//! replica, its archived files shown, and one fetched back to compare with the server's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use logship_protocol::archive::key::{self, SourceName};
use logship_protocol::mysql::key::ServerNo;
use tokio_util::sync::CancellationToken;

use super::say;
use crate::archive::Fetched;
use crate::config::MysqlSourceConfig;
use crate::identity::read_identity;
use crate::localserver::free_port;
use crate::metrics::SourceMetrics;
use crate::mysql::catalog::BinlogCatalog;
use crate::mysql::fetch::binlog_fetch;
use crate::mysql::localdb::LocalMariaDb;
use crate::mysql::source::MysqlSource;
use crate::store::Store;

/// The source name the MariaDB part archives under.
const SOURCE: &str = "quickstart-mariadb";
/// Transactions per batch, and orders per transaction.
const TRANSACTIONS: u32 = 5;
const ORDERS_PER_TRANSACTION: u32 = 100;
/// How long the archive may take to catch up with the server.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Streams a throwaway MariaDB when one is installed; says so plainly when it is not.
pub async fn run(store: Arc<dyn Store>, step: u32) -> anyhow::Result<()> {
    let Some(mariadbd) = LocalMariaDb::find() else {
        say(&format!(
            "{step}. Skipping MariaDB: mariadbd is not installed (apt-get install mariadb-server mariadb-client, and run the quickstart again to stream a MariaDB too)."
        ));
        return Ok(());
    };
    let dir = tempfile::Builder::new()
        .prefix("logship-quickstart-mariadb-")
        .tempdir()
        .context("cannot create a temp dir")?;
    let port = free_port()?;
    say(&format!(
        "{step}. Starting a throwaway MariaDB in {} on 127.0.0.1:{port}.",
        dir.path().display()
    ));
    let db = LocalMariaDb::start(&mariadbd, dir.path(), port).await?;
    let outcome = tour(&db, store, step + 1).await;
    let stopped = db.stop().await;
    outcome?;
    stopped
}

async fn tour(db: &LocalMariaDb, store: Arc<dyn Store>, step: u32) -> anyhow::Result<()> {
    let name = SourceName::new(SOURCE).map_err(|e| anyhow!("{e}"))?;
    if read_identity(store.as_ref(), &name).await?.is_some() {
        for object in store.list(&key::source_prefix(&name)).await? {
            store.delete(&object.key).await?;
        }
    }
    let config = MysqlSourceConfig::inline(SOURCE, &db.url())?;
    say(&format!(
        "{step}. Streaming its binlog into {} as source \"{SOURCE}\": logship registers as a replica (server_id {}) and ships the file in progress every second.",
        store.url(),
        config.server_id
    ));
    let metrics = SourceMetrics::new(SOURCE);
    let source = MysqlSource::new(config, store.clone(), metrics.clone());
    let shutdown = CancellationToken::new();
    let streaming = tokio::spawn(source.run(shutdown.clone()));
    let outcome = async {
        say(&format!(
            "{}. Running a workload: {TRANSACTIONS} transactions of {ORDERS_PER_TRANSACTION} orders, FLUSH BINARY LOGS (the server closes its binlog file and starts the next), then {TRANSACTIONS} more.",
            step + 1
        ));
        workload(db).await?;
        let caught_up = wait_until_archived(db, store.as_ref(), &name).await?;
        let lag = metrics.snapshot();
        say(&format!(
            "   Caught up: the last commit was durable in the store {:.2} s after the workload ended. Lag is now {} bytes, {:.1} s.",
            caught_up.as_secs_f64(),
            lag.lag_bytes(),
            lag.lag_seconds()
        ));
        show_archive(db, store.as_ref(), &name, step + 2).await
    }
    .await;
    shutdown.cancel();
    let stopped = streaming.await.context("the streaming task failed")?;
    outcome?;
    stopped?;
    say(
        "   Point-in-time restore for MariaDB comes with MySQL base backups, which this version does not take yet.",
    );
    Ok(())
}

async fn workload(db: &LocalMariaDb) -> anyhow::Result<()> {
    db.query(
        "CREATE DATABASE shop; CREATE TABLE shop.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, batch INT NOT NULL, item VARCHAR(64) NOT NULL)",
    )
    .await?;
    for batch in [1, 2] {
        for _ in 0..TRANSACTIONS {
            db.query(&format!(
                "INSERT INTO shop.orders (batch, item) SELECT {batch}, CONCAT('item ', seq) FROM shop.seq_1_to_{ORDERS_PER_TRANSACTION}"
            ))
            .await?;
        }
        if batch == 1 {
            db.query("FLUSH BINARY LOGS").await?;
        }
    }
    Ok(())
}

/// Waits until the archive holds the server's binlog up to its current position.
async fn wait_until_archived(
    db: &LocalMariaDb,
    store: &dyn Store,
    name: &SourceName,
) -> anyhow::Result<Duration> {
    let (file, pos) = db.binlog_position().await?;
    let started = Instant::now();
    loop {
        let catalog = BinlogCatalog::load(store, name).await?;
        let durable = catalog
            .files(ServerNo::FIRST)
            .find(|(archived, _)| archived.as_str() == file)
            .and_then(|(_, objects)| objects.durable_len())
            .map_or(0, u64::from);
        if durable >= pos {
            return Ok(started.elapsed());
        }
        if started.elapsed() > CATCH_UP {
            bail!(
                "the archive did not catch up with {file}:{pos} within {} s (durable up to {file}:{durable})",
                CATCH_UP.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prints the archived files and proves a closed one with a `binlog-fetch` round trip.
async fn show_archive(
    db: &LocalMariaDb,
    store: &dyn Store,
    name: &SourceName,
    step: u32,
) -> anyhow::Result<()> {
    say(&format!("{step}. The archive holds:"));
    let catalog = BinlogCatalog::load(store, name).await?;
    let mut first_complete = None;
    for (file, objects) in catalog.files(ServerNo::FIRST) {
        match objects.complete_len() {
            Some(len) => {
                first_complete.get_or_insert(file.clone());
                say(&format!("   {file}  complete, {len} bytes"));
            }
            None => say(&format!(
                "   {file}  in progress: {} bytes durable, in {} piece(s)",
                objects.durable_len().unwrap_or(0),
                objects.chain().len()
            )),
        }
    }
    let file = first_complete.context("no complete binlog file was archived")?;
    let fetched_dir = tempfile::tempdir()?;
    let dest = fetched_dir.path().join(file.as_str());
    if binlog_fetch(store, name, file.as_str(), &dest).await? != Fetched::Found {
        bail!("binlog-fetch did not find {file}");
    }
    let fetched = tokio::fs::read(&dest).await?;
    let original = tokio::fs::read(db.binlog_path(file.as_str())).await?;
    if fetched != original {
        bail!("binlog-fetch returned {file} different from the server's own file");
    }
    say(&format!(
        "{}. `logship binlog-fetch {file}` returned the file byte for byte as the server wrote it ({} bytes).",
        step + 1,
        fetched.len()
    ));
    Ok(())
}
