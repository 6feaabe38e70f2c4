//! The commands behind `logship run`, `logship backup` and `logship wal-fetch`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use logship_protocol::archive::SourceIdentity;
use logship_protocol::archive::backup::BackupId;
use logship_protocol::archive::key::{ArchiveKey, SourceName};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backup::schedule::BackupSchedule;
use crate::cli::RestoreArgs;
use crate::config::{Config, Source};
use crate::fetchdest::FetchDest;
use crate::identity::read_identity;
use crate::metrics::{self, SourceMetrics};
use crate::mysql::backup::{self as mysql_backup, MysqlScheduled};
use crate::mysql::restore::execute as mysql_restore;
use crate::mysql::source::MysqlSource;
use crate::pg::backup::{self, BackupSettings, PgScheduled};
use crate::pg::localpg::{LocalPostgres, shell_quote};
use crate::pg::restore;
use crate::pg::restore::recovery_conf::RestoreCommand;
use crate::pg::restore::start::Outcome;
use crate::pg::source::PostgresSource;
use crate::pg::walfetch::{self, Fetched};
use crate::store::{self, Store};
use crate::timefmt;

/// How long shutdown may take before the process gives up on making WAL durable.
/// Kubernetes' default grace period is 30 s; DESIGN.md asks for 5 s.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(4500);

/// `logship run`: streams every source until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    if config.sources.is_empty() {
        bail!("no source configured (pass --postgres URL, or add a [[source]] to logship.toml)");
    }
    let store = store::open(&config.store).await?;
    let handle = metrics::install_recorder()?;
    let shutdown = CancellationToken::new();
    let mut sources = JoinSet::new();
    // Dropped on return, which stops any schedule still running.
    let mut schedules = JoinSet::new();
    let mut all_metrics = Vec::new();
    for source in &config.sources {
        let name = source.name().clone();
        let source_metrics = SourceMetrics::new(name.as_str());
        all_metrics.push(source_metrics.clone());
        match source {
            Source::Postgres(source) => {
                let schedule = BackupSchedule {
                    store: store.clone(),
                    source: name.clone(),
                    backup: Box::new(PgScheduled {
                        store: store.clone(),
                        source: name.clone(),
                        options: backup::connect_options(source)?,
                        settings: BackupSettings::from_config(source),
                    }),
                    interval: source.common.base_backup_interval,
                    metrics: source_metrics.clone(),
                };
                schedules.spawn(schedule.run(shutdown.clone()));
                let pg = PostgresSource::new(source.clone(), store.clone(), source_metrics)?;
                let token = shutdown.clone();
                sources.spawn(async move { (name, pg.run(token).await.map_err(Into::into)) });
            }
            Source::Mysql(source) => {
                let schedule = BackupSchedule {
                    store: store.clone(),
                    source: name.clone(),
                    backup: Box::new(MysqlScheduled {
                        store: store.clone(),
                        source: name.clone(),
                        options: mysql_backup::connect_options(source)?,
                        settings: mysql_backup::BackupSettings::from_config(source),
                    }),
                    interval: source.common.base_backup_interval,
                    metrics: source_metrics.clone(),
                };
                if source.scheduled_backups {
                    schedules.spawn(schedule.run(shutdown.clone()));
                }
                let mysql = MysqlSource::new(source.clone(), store.clone(), source_metrics);
                let token = shutdown.clone();
                sources.spawn(async move { (name, mysql.run(token).await.map_err(Into::into)) });
            }
        }
    }
    schedules.spawn(metrics::announce_when_streaming(
        config.metrics.listen,
        all_metrics.clone(),
    ));
    let server = tokio::spawn(metrics::serve(config.metrics.listen, handle, all_metrics));
    let outcome = tokio::select! {
        signal = shutdown_signal() => {
            signal?;
            tracing::info!("shutting down: making everything received durable");
            shutdown.cancel();
            tokio::time::timeout(SHUTDOWN_BUDGET, wait_all(&mut sources))
                .await
                .unwrap_or_else(|_| Err(anyhow!("shutdown took longer than {SHUTDOWN_BUDGET:?}: some received WAL may not be durable yet (it is still on the server, held by the slot)")))
        }
        Some(first) = sources.join_next() => {
            // A source only ends on its own by failing.
            shutdown.cancel();
            let result = source_result(first);
            let _ = tokio::time::timeout(SHUTDOWN_BUDGET, wait_all(&mut sources)).await;
            result.and(Err(anyhow!("a source stopped unexpectedly")))
        }
        served = server => match served {
            Ok(Err(err)) => Err(err),
            _ => Err(anyhow!("the metrics server stopped unexpectedly")),
        },
    };
    outcome
}

/// What a source task ends with.
type SourceOutcome = (SourceName, anyhow::Result<()>);

async fn wait_all(sources: &mut JoinSet<SourceOutcome>) -> anyhow::Result<()> {
    let mut result = Ok(());
    while let Some(joined) = sources.join_next().await {
        if let Err(err) = source_result(joined) {
            result = Err(err);
        }
    }
    result
}

fn source_result(joined: Result<SourceOutcome, tokio::task::JoinError>) -> anyhow::Result<()> {
    match joined {
        Ok((_, Ok(()))) => Ok(()),
        Ok((name, Err(err))) => Err(anyhow!("source {name}: {err}")),
        Err(err) => Err(anyhow!("a source task failed: {err}")),
    }
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        ctrl_c = tokio::signal::ctrl_c() => ctrl_c.context("cannot install the Ctrl-C handler")?,
    }
    Ok(())
}

/// `logship backup`: takes one base backup of the source now; returns its id once durable.
pub async fn backup(config: &Config, source: Option<&str>) -> anyhow::Result<BackupId> {
    let store = store::open(&config.store).await?;
    match config.source(source)? {
        Source::Postgres(source) => {
            let options = backup::connect_options(source)?;
            let settings = BackupSettings::from_config(source);
            let meta = backup::take_backup(store, &source.common.name, &options, &settings).await?;
            Ok(meta.id)
        }
        Source::Mysql(source) => {
            let options = mysql_backup::connect_options(source)?;
            let settings = mysql_backup::BackupSettings::from_config(source);
            let meta =
                mysql_backup::take_backup(store, &source.common.name, &options, &settings).await?;
            Ok(meta.id)
        }
    }
}

/// `logship wal-fetch FILE DEST`, reading `prefetch` segments ahead.
pub async fn wal_fetch(
    config: &Config,
    source: Option<&str>,
    file: &str,
    dest: &Path,
    prefetch: usize,
) -> anyhow::Result<Fetched> {
    let launcher = walfetch::ahead::Launcher::this_process()
        .context("cannot find the path of the logship executable for the read-ahead worker")?;
    // Segments are spooled beside a file (a link's target) in pg_wal, never for a stream.
    let (dest, prefetch) = match FetchDest::file_path(dest) {
        Some(file) => (file, prefetch),
        None => (dest.to_owned(), 0),
    };
    let dest = dest.as_path();
    if prefetch > 0
        && let Some(fetched) = walfetch::wal_fetch_spooled(file, dest, &launcher)?
    {
        return Ok(fetched);
    }
    let store = store::open(&config.store).await?;
    let source = pick_source(config, store.as_ref(), source).await?;
    Ok(walfetch::wal_fetch_prefetching(store, &source, file, dest, prefetch, &launcher).await?)
}

/// `logship binlog-fetch FILE DEST`.
pub async fn binlog_fetch(
    config: &Config,
    source: Option<&str>,
    file: &str,
    dest: &Path,
) -> anyhow::Result<Fetched> {
    let store = store::open(&config.store).await?;
    let source = pick_source(config, store.as_ref(), source).await?;
    Ok(crate::mysql::fetch::binlog_fetch(store.as_ref(), &source, file, dest).await?)
}

/// `logship wal-fetch --read-ahead-worker`: fills the spool beside `dest`, then exits.
pub async fn wal_fetch_worker(
    config: &Config,
    source: Option<&str>,
    dest: &Path,
    prefetch: usize,
) -> anyhow::Result<()> {
    let store = store::open(&config.store).await?;
    let source = pick_source(config, store.as_ref(), source).await?;
    Ok(walfetch::read_ahead(store, source, dest, prefetch).await?)
}

/// `logship list`: every source, or the one asked for.
pub async fn list(config: &Config, source: Option<&str>, json: bool) -> anyhow::Result<()> {
    let store = store::open(&config.store).await?;
    let sources = match source {
        Some(_) => vec![pick_source(config, store.as_ref(), source).await?],
        None if !config.sources.is_empty() => {
            config.sources.iter().map(|s| s.name().clone()).collect()
        }
        None => stored_sources(store.as_ref()).await?,
    };
    if sources.is_empty() && !json {
        println!(
            "store {} holds no archive yet (run `logship run` first, or check the store URL)",
            store.url()
        );
        return Ok(());
    }
    crate::list::list(
        store.as_ref(),
        &sources,
        json,
        &mut std::io::stdout().lock(),
    )
    .await?;
    Ok(())
}

/// `logship restore`: restores, then with `--start` runs the server to the target.
pub async fn restore(config: &Config, args: &RestoreArgs) -> anyhow::Result<()> {
    let store = store::open(&config.store).await?;
    let source = pick_source(config, store.as_ref(), args.source.as_deref()).await?;
    match read_identity(store.as_ref(), &source).await? {
        Some(SourceIdentity::Postgres { .. }) | None => {
            refuse_flags(args.binlog_only_flag(), "PostgreSQL")?;
            restore_postgres(config, store, source, args).await
        }
        Some(_) => {
            refuse_flags(args.wal_only_flag(), "MySQL/MariaDB")?;
            restore_mysql(store, source, args).await
        }
    }
}

/// Refuses a flag given for a source of another kind.
fn refuse_flags(flag: Option<&str>, kind: &str) -> anyhow::Result<()> {
    match flag {
        Some(flag) => {
            bail!("{flag} does not apply to a {kind} source (see logship restore --help)")
        }
        None => Ok(()),
    }
}

/// `logship restore` of a MySQL/MariaDB source.
async fn restore_mysql(
    store: Arc<dyn Store>,
    source: SourceName,
    args: &RestoreArgs,
) -> anyhow::Result<()> {
    let request = mysql_restore::MysqlRestoreRequest {
        to: args.to.clone(),
        target: args.binlog_target(),
        port: args.port,
        force: args.force,
        start: args.start,
        workers: mysql_restore::DEFAULT_WORKERS,
    };
    let restored = mysql_restore::run(store, &source, &request).await?;
    for line in restored.report() {
        println!("{line}");
    }
    Ok(())
}

/// `logship restore` of a PostgreSQL source.
async fn restore_postgres(
    config: &Config,
    store: Arc<dyn Store>,
    source: SourceName,
    args: &RestoreArgs,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe()
        .context("cannot find the path of the logship executable for the restore_command")?;
    let request = restore::execute::RestoreRequest {
        to: args.to.clone(),
        target: args.target(),
        timeline: args.target_timeline,
        action: args.target_action,
        port: args.port,
        force: args.force,
        tablespace_mapping: args.tablespace_mapping.clone(),
        restore_command: RestoreCommand {
            exe,
            store_url: store.url().to_owned(),
            endpoint: config.store.endpoint.clone(),
            region: config.store.region.clone(),
            path_style: config.store.path_style,
            source: source.clone(),
        },
    };
    let progress = restore::execute::progress_bar();
    let restored = restore::run(store, &source, &request, &progress).await?;
    let plan = &restored.plan;
    println!(
        "restored backup {} into {} ({} files); recovery replays timeline {} to {}",
        plan.backup.id,
        restored.dir.display(),
        restored.files,
        plan.timeline,
        plan.target
    );
    if !args.start {
        let pg = LocalPostgres::existing(&restored.dir, restored.port, &restored.dir)?;
        let log = restored.dir.join(restore::start::START_LOG);
        let start = format!("-l {} start", shell_quote(&log.display().to_string()));
        println!("start it with: {}", pg.pg_ctl_command(&start));
        return Ok(());
    }
    let reached = restore::start::start(&restored, args.target_action).await?;
    match reached.time {
        Some(time) => println!("reached {} at {}", timefmt::format_time(time), reached.lsn),
        None => println!(
            "reached {} (no transaction was replayed after the backup)",
            reached.lsn
        ),
    }
    match (reached.outcome, &reached.stop_command) {
        (Outcome::ShutDown, _) => println!(
            "the server was shut down at the target; starting it again replays to the target and shuts it down again"
        ),
        (outcome, Some(stop)) => {
            let state = if outcome == Outcome::Paused {
                "paused at the target, read-only"
            } else {
                "promoted, accepting writes"
            };
            println!(
                "the server is running on port {} ({state}; log {}); stop it with: {stop}",
                restored.port,
                reached.log.display()
            );
        }
        (_, None) => {}
    }
    Ok(())
}

/// The source a read command works on: `--source`, the only configured one,
/// or the only one the store holds.
pub async fn pick_source(
    config: &Config,
    store: &dyn Store,
    wanted: Option<&str>,
) -> anyhow::Result<SourceName> {
    if wanted.is_some() || !config.sources.is_empty() {
        if let Some(name) = wanted
            && config.sources.is_empty()
        {
            let name =
                SourceName::new(name).map_err(|err| anyhow!("invalid --source {name:?}: {err}"))?;
            let stored = stored_sources(store).await?;
            if !stored.is_empty() && !stored.contains(&name) {
                bail!(
                    "store {} holds no source named {:?} (it holds: {})",
                    store.url(),
                    name.as_str(),
                    source_list(&stored)
                );
            }
            return Ok(name);
        }
        return Ok(config.source(wanted)?.name().clone());
    }
    let stored = stored_sources(store).await?;
    match stored.as_slice() {
        [only] => Ok(only.clone()),
        [] => bail!(
            "store {} holds no archive yet (run `logship run` first, or check the store URL)",
            store.url()
        ),
        _ => bail!(
            "store {} holds several sources (choose one with --source: {})",
            store.url(),
            source_list(&stored)
        ),
    }
}

fn source_list(sources: &[SourceName]) -> String {
    sources
        .iter()
        .map(SourceName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every source that has an identity object in the store.
pub async fn stored_sources(store: &dyn Store) -> anyhow::Result<Vec<SourceName>> {
    let mut names = Vec::new();
    for object in store.list("").await? {
        if let Ok((name, ArchiveKey::Identity)) = ArchiveKey::parse(&object.key) {
            names.push(name);
        }
    }
    Ok(names)
}
