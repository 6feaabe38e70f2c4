//! `logship quickstart`: a guided first run on the embedded defaults.
//!
//! Starts a throwaway PostgreSQL in a temp dir, streams it into the configured
//! store (by default the embedded file store `./logship-data`) while a small
//! workload runs, shows the archived range and the lag, and proves the archive
//! right with a `wal-fetch` round trip against the server's own files.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use logship_protocol::archive::key::{self, SourceName};
use logship_protocol::pg::{Lsn, SegmentNo, TimelineId, WalSegSize, xlog_file_name};
use tokio_util::sync::CancellationToken;

use crate::catalog::WalCatalog;
use crate::config::{Config, SourceConfig};
use crate::identity::read_identity;
use crate::localpg::LocalPostgres;
use crate::metrics::SourceMetrics;
use crate::source::postgres::PostgresSource;
use crate::store::{self, Store};
use crate::walfetch::{self, Fetched};

/// The source name the quickstart archives under.
const SOURCE: &str = "quickstart";
const BATCHES: u32 = 10;
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
    let outcome = tour(&config, &pg).await;
    let stopped = pg.stop(true).await;
    outcome?;
    stopped?;
    say(
        "Done. The throwaway server is stopped and its temp dir removed; the archive stays in the store.",
    );
    say("Next: point `logship run --postgres URL` at your own server (see README.md).");
    Ok(())
}

async fn tour(config: &Config, pg: &LocalPostgres) -> anyhow::Result<()> {
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
        "2. Streaming its WAL into {} as source \"{SOURCE}\", shipping the segment in progress every second.",
        store.url()
    ));
    let source_config = SourceConfig::postgres(SOURCE, &pg.url())?;
    let metrics = SourceMetrics::new(SOURCE);
    let source = PostgresSource::new(name.clone(), source_config, store.clone(), metrics.clone())?;
    let shutdown = CancellationToken::new();
    let streaming = tokio::spawn(source.run(shutdown.clone()));

    let outcome = workload_and_checks(pg, store.as_ref(), &name, &metrics).await;
    shutdown.cancel();
    let stopped = streaming.await.context("the streaming task failed")?;
    outcome?;
    stopped?;
    Ok(())
}

async fn workload_and_checks(
    pg: &LocalPostgres,
    store: &dyn Store,
    name: &SourceName,
    metrics: &SourceMetrics,
) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .context("cannot connect to the throwaway server")?;
    tokio::spawn(connection);

    say(&format!(
        "3. Running a workload: {BATCHES} batches of {ROWS_PER_BATCH} orders, and a WAL switch that completes a segment."
    ));
    client
        .batch_execute("CREATE TABLE orders (id bigserial PRIMARY KEY, item text NOT NULL, placed_at timestamptz NOT NULL DEFAULT clock_timestamp())")
        .await?;
    for batch in 1..=BATCHES {
        client
            .execute(
                "INSERT INTO orders (item) SELECT 'item ' || g FROM generate_series(1, $1::int) g",
                &[&(ROWS_PER_BATCH as i32)],
            )
            .await?;
        if batch == BATCHES / 2 {
            client.batch_execute("SELECT pg_switch_wal()").await?;
        }
        let s = metrics.snapshot();
        say(&format!(
            "   batch {batch:>2}: server at {}, durable in the store at {}, lag {} bytes",
            s.server,
            s.durable,
            s.lag_bytes()
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let row = client
        .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
        .await?;
    let server_lsn: Lsn = row
        .get::<_, String>(0)
        .parse()
        .map_err(|e| anyhow!("{e}"))?;
    let started = Instant::now();
    while metrics.snapshot().durable < server_lsn {
        if started.elapsed() > Duration::from_secs(30) {
            bail!(
                "the archive did not catch up with {server_lsn} within 30 s (durable at {})",
                metrics.snapshot().durable
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    say(&format!(
        "4. Caught up: the last commit ({server_lsn}) was durable in the store {:.2} s after the workload ended. Lag is now 0 bytes.",
        started.elapsed().as_secs_f64()
    ));

    let seg = WalSegSize::DEFAULT;
    let catalog = WalCatalog::load(store, name, seg).await?;
    say("5. The archive holds:");
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
            "6. `logship wal-fetch {file}` returned the segment byte for byte as the server wrote it ({} bytes).",
            fetched.len()
        )),
        Some(p) => say(&format!(
            "   `logship wal-fetch {file}` returned the segment in progress: its {p} durable bytes equal the server's, padded with zeros."
        )),
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

fn say(line: &str) {
    println!("{line}");
}
