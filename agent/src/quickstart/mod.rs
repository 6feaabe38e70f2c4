//! `logship quickstart`: a guided first run on the embedded defaults.
//!
//! Starts a throwaway PostgreSQL in a temp dir, streams it into the configured
//! store (by default the embedded file store `./logship-data`), takes a base
//! backup, runs a workload in two batches, shows the lag and the archived range,
//! proves the archive right with `wal-fetch` round trips against the server's
//! own files, then restores to a moment between the batches and shows that the
//! first batch is there and the second is not. When MariaDB is installed, a
//! throwaway MariaDB is streamed too ([`mariadb`]).

mod mariadb;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use logship_protocol::archive::key::{self, SourceName};
use logship_protocol::pg::{Lsn, SegmentNo, TimelineId, WalSegSize, xlog_file_name};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, PgSourceConfig};
use crate::identity::read_identity;
use crate::localserver::free_port;
use crate::metrics::SourceMetrics;
use crate::pg::backup::{self, BackupSettings};
use crate::pg::catalog::WalCatalog;
use crate::pg::localpg::LocalPostgres;
use crate::pg::restore::plan::{RecoveryTarget, TargetTimeline};
use crate::pg::restore::recovery_conf::{RestoreCommand, TargetAction};
use crate::pg::restore::{self, execute::RestoreRequest};
use crate::pg::source::PostgresSource;
use crate::pg::walfetch::{self, Fetched};
use crate::store::{self, Store};

/// The source name the quickstart archives under.
const SOURCE: &str = "quickstart";
/// Transactions per batch.
const BATCHES: u32 = 5;
/// Orders per batch.
const ROWS_PER_BATCH: u32 = 500;

/// Runs the quickstart; the throwaway server is stopped whatever happens.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("logship-quickstart-")
        .tempdir()
        .context("cannot create a temp dir")?;
    let port = free_port()?;
    say(&format!(
        "1. Starting a throwaway PostgreSQL in {} on 127.0.0.1:{port}.",
        dir.path().display()
    ));
    let pg = LocalPostgres::init(dir.path(), port).await?;
    pg.start().await?;
    let outcome = tour(&config, &pg, dir.path()).await;
    let stopped = pg.stop(true).await;
    outcome?;
    stopped?;
    mariadb::run(store::open(&config.store).await?, 9).await?;
    say(
        "Done. The throwaway servers are stopped and their temp dirs removed; the archive stays in the store.",
    );
    say(
        "Next: point `logship run --postgres URL` or `logship run --mysql URL` at your own server (see README.md).",
    );
    Ok(())
}

async fn tour(config: &Config, pg: &LocalPostgres, dir: &Path) -> anyhow::Result<()> {
    let store = store::open(&config.store).await?;
    let name = SourceName::new(SOURCE).map_err(|e| anyhow!("{e}"))?;
    if read_identity(store.as_ref(), &name).await?.is_some() {
        say(&format!(
            "   Removing the archive of an earlier quickstart under {}/{SOURCE}/.",
            store.url()
        ));
        for object in store.list(&key::source_prefix(&name)).await? {
            store.delete(&object.key).await?;
        }
    }

    say(&format!(
        "2. Streaming its WAL into {} as source \"{SOURCE}\"; the segment in progress is shipped every second.",
        store.url()
    ));
    let source_config = PgSourceConfig::inline(SOURCE, &pg.url())?;
    let metrics = SourceMetrics::new(SOURCE);
    let source = PostgresSource::new(source_config.clone(), store.clone(), metrics.clone())?;
    let shutdown = CancellationToken::new();
    let streaming = tokio::spawn(source.run(shutdown.clone()));

    let outcome = async {
        let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
            .await
            .context("cannot connect to the throwaway server")?;
        tokio::spawn(connection);
        client
            .batch_execute("CREATE TABLE orders (id bigserial PRIMARY KEY, batch int NOT NULL, item text NOT NULL, placed_at timestamptz NOT NULL DEFAULT clock_timestamp())")
            .await?;
        wait_until_archived(&client, &metrics).await?;

        say("3. Taking a base backup (BASE_BACKUP over the replication protocol, into the store).");
        let options = backup::connect_options(&source_config)?;
        let meta = backup::take_backup(
            store.clone(),
            &name,
            &options,
            &BackupSettings::from_config(&source_config),
        )
        .await?;
        say(&format!(
            "   backup {} holds {} MB of data, stored as {} MB.",
            meta.id,
            meta.raw_bytes / 1_000_000,
            meta.stored_bytes / 1_000_000
        ));

        let between = workload(&client, &metrics).await?;
        let caught_up = wait_until_archived(&client, &metrics).await?;
        say(&format!(
            "5. Caught up: the last commit was durable in the store {:.2} s after the workload ended. Lag is now {} bytes.",
            caught_up.as_secs_f64(),
            metrics.snapshot().lag_bytes()
        ));
        show_archive(pg, store.as_ref(), &name).await?;
        restore_between(store.clone(), &name, config, dir, between).await
    }
    .await;
    shutdown.cancel();
    let stopped = streaming.await.context("the streaming task failed")?;
    outcome?;
    stopped?;
    Ok(())
}

/// Two batches of orders with a quiet moment between them; returns that moment.
async fn workload(
    client: &tokio_postgres::Client,
    metrics: &SourceMetrics,
) -> anyhow::Result<jiff::Timestamp> {
    say(&format!(
        "4. Running a workload: batch 1 ({ROWS_PER_BATCH} orders in {BATCHES} transactions), a WAL switch that completes a segment, a pause, then batch 2."
    ));
    for batch in [1, 2] {
        for step in 1..=BATCHES {
            client
                .execute(
                    "INSERT INTO orders (batch, item) SELECT $1::int, 'item ' || g FROM generate_series(1, $2::int) g",
                    &[&batch, &((ROWS_PER_BATCH / BATCHES) as i32)],
                )
                .await?;
            if step == BATCHES / 2 && batch == 1 {
                client.batch_execute("SELECT pg_switch_wal()").await?;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let s = metrics.snapshot();
        say(&format!(
            "   batch {batch} committed: server at {}, durable in the store at {}, lag {} bytes",
            Lsn::new(s.server),
            Lsn::new(s.durable),
            s.lag_bytes()
        ));
        if batch == 1 {
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    }
    let row = client
        .query_one(
            "SELECT to_char((max(placed_at) FILTER (WHERE batch = 1) + (min(placed_at) FILTER (WHERE batch = 2) - max(placed_at) FILTER (WHERE batch = 1)) / 2) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM orders",
            &[],
        )
        .await?;
    let between: String = row.get(0);
    crate::timefmt::parse_time(&between).map_err(|e| anyhow!("{e}"))
}

/// Waits until everything the server has written is durable in the store; returns how long it took.
async fn wait_until_archived(
    client: &tokio_postgres::Client,
    metrics: &SourceMetrics,
) -> anyhow::Result<Duration> {
    let row = client
        .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
        .await?;
    let server_lsn: Lsn = row
        .get::<_, String>(0)
        .parse()
        .map_err(|e| anyhow!("{e}"))?;
    let started = Instant::now();
    while metrics.snapshot().durable < server_lsn.as_u64() {
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "the archive did not catch up with {server_lsn} within 30 s (durable at {})",
                Lsn::new(metrics.snapshot().durable)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed())
}

/// Prints what the store holds and proves it with `wal-fetch` round trips.
async fn show_archive(
    pg: &LocalPostgres,
    store: &dyn Store,
    name: &SourceName,
) -> anyhow::Result<()> {
    let seg = WalSegSize::DEFAULT;
    let catalog = WalCatalog::load(store, name, seg).await?;
    say("6. The archive holds:");
    let mut first_complete = None;
    for tli in catalog.timelines() {
        for (segno, objects) in catalog.segments(tli) {
            let file = xlog_file_name(tli, segno, seg);
            if objects.complete {
                first_complete.get_or_insert((tli, segno));
                say(&format!("   {file}  complete segment"));
            } else {
                say(&format!(
                    "   {file}  in progress: {} bytes durable, in {} piece(s)",
                    objects.durable_len(seg),
                    objects.chain().len()
                ));
            }
        }
    }
    let (tli, segno) = first_complete.context("no complete segment was archived")?;
    check_round_trip(pg, store, name, tli, segno, seg, None).await?;
    let newest = catalog.newest_end().context("the archive is empty")?;
    let offset = newest.end.segment_offset(seg);
    if offset > 0 {
        check_round_trip(
            pg,
            store,
            name,
            newest.tli,
            newest.end.segment_no(seg),
            seg,
            Some(offset),
        )
        .await?;
    }
    Ok(())
}

/// Restores to `between` into a new data directory, starts it, and shows that
/// batch 1 is there and batch 2 is not.
async fn restore_between(
    store: Arc<dyn Store>,
    name: &SourceName,
    config: &Config,
    dir: &Path,
    between: jiff::Timestamp,
) -> anyhow::Result<()> {
    say(&format!(
        "8. Restoring to {} (between the two batches) into a new data directory, and starting it.",
        crate::timefmt::format_time(between)
    ));
    let port = free_port()?;
    let request = RestoreRequest {
        to: dir.join("restored"),
        target: RecoveryTarget::Time(between),
        timeline: TargetTimeline::Latest,
        action: TargetAction::Promote,
        port: Some(port),
        force: false,
        tablespace_mapping: Vec::new(),
        restore_command: RestoreCommand {
            exe: std::env::current_exe().context("cannot find the logship executable")?,
            store_url: store.url().to_owned(),
            endpoint: config.store.endpoint.clone(),
            region: config.store.region.clone(),
            path_style: config.store.path_style,
            source: name.clone(),
        },
    };
    let restored = restore::run(store, name, &request, &restore::execute::progress_bar()).await?;
    let reached = restore::start::start(&restored, TargetAction::Promote).await?;
    let restored_pg = LocalPostgres::existing(&restored.dir, port, &restored.dir)?;
    let counted = count_batches(port).await;
    restored_pg.stop(true).await?;
    let (first, second) = counted?;
    say(&format!(
        "   recovery stopped at {} ({}); the restored server has {first} orders of batch 1 and {second} of batch 2.",
        reached.lsn,
        reached
            .time
            .map_or("no commit replayed".to_owned(), crate::timefmt::format_time),
    ));
    if first != i64::from(ROWS_PER_BATCH) || second != 0 {
        bail!(
            "the restore is wrong: expected {ROWS_PER_BATCH} orders of batch 1 and none of batch 2"
        );
    }
    say(
        "   Batch 1 is there and batch 2 is not: the restore reached exactly the moment asked for.",
    );
    Ok(())
}

async fn count_batches(port: u16) -> anyhow::Result<(i64, i64)> {
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .context("cannot connect to the restored server")?;
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE batch = 1), count(*) FILTER (WHERE batch = 2) FROM orders",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Fetches a segment back with `wal-fetch` and compares it with the server's own file
/// (only its first `prefix` bytes for the segment in progress).
async fn check_round_trip(
    pg: &LocalPostgres,
    store: &dyn Store,
    name: &SourceName,
    tli: TimelineId,
    segno: SegmentNo,
    seg: WalSegSize,
    prefix: Option<u64>,
) -> anyhow::Result<()> {
    let file = xlog_file_name(tli, segno, seg);
    let fetched_dir = tempfile::tempdir()?;
    let dest = fetched_dir.path().join(&file);
    if walfetch::wal_fetch(store, name, &file, &dest).await? != Fetched::Found {
        bail!("wal-fetch did not find {file}");
    }
    let fetched = tokio::fs::read(&dest).await?;
    let original = tokio::fs::read(pg.data_dir().join("pg_wal").join(&file)).await?;
    let compare = prefix.map_or(original.len(), |p| usize::try_from(p).unwrap_or(usize::MAX));
    let same = fetched.len() == original.len() && fetched.get(..compare) == original.get(..compare);
    if !same {
        bail!("wal-fetch returned {file} different from the server's own file");
    }
    match prefix {
        None => say(&format!(
            "7. `logship wal-fetch {file}` returned the segment byte for byte as the server wrote it ({} bytes).",
            fetched.len()
        )),
        Some(p) => say(&format!(
            "   `logship wal-fetch {file}` returned the segment in progress: its {p} durable bytes equal the server's, padded with zeros."
        )),
    }
    Ok(())
}

fn say(line: &str) {
    println!("{line}");
}
