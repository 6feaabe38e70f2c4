//! The read-ahead worker: a process that `wal-fetch` starts detached, which keeps the spool
//! filled with the segments after the one PostgreSQL asked for last, so that replay never
//! waits for the store, as pgBackRest's asynchronous `archive-get` does.
//!
//! One worker runs per spool: it holds the spool's lock file while it runs. Each request
//! records in the spool which segment comes next; the worker follows that, fetches up to
//! [`PARALLEL`] segments at a time, lowest first, and exits once nothing new was asked of it
//! for [`IDLE_EXIT`], or as soon as the server it serves stops or leaves recovery.

use std::collections::BTreeSet;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logship_protocol::archive::key::SourceName;
use logship_protocol::pg::key::WalKey;
use logship_protocol::pg::segment::WalFileName;
use logship_protocol::pg::{SegmentNo, TimelineId, xlog_file_name};

use super::spool::Spool;
use crate::archive::read_object;
use crate::store::Store;

/// The hidden `wal-fetch` flag that runs the worker instead of serving a request.
pub const WORKER_FLAG: &str = "--read-ahead-worker";

/// The worker's log, in the spool; each worker starts it anew.
pub const LOG_FILE: &str = "read-ahead.log";

/// Segments fetched at the same time (memory: about 32 MiB each).
pub const PARALLEL: usize = 2;

/// How long the worker stays when nothing new is asked of it.
pub const IDLE_EXIT: Duration = Duration::from_secs(5);

/// How often the worker looks at what is asked of it.
const TICK: Duration = Duration::from_millis(20);

/// How long a worker that just started tries to take the lock, which a request's
/// [`is_running`] check may hold for an instant.
const LOCK_TRIES: u32 = 25;

/// How a request starts the worker: this program, run again with the same arguments and
/// [`WORKER_FLAG`], detached from the request.
#[derive(Debug, Clone)]
pub struct Launcher {
    program: PathBuf,
    args: Vec<std::ffi::OsString>,
}

impl Launcher {
    /// Runs `program` with `args` (a `wal-fetch` command line) and [`WORKER_FLAG`].
    pub fn new(program: PathBuf, args: Vec<std::ffi::OsString>) -> Launcher {
        Launcher { program, args }
    }

    /// The running `logship wal-fetch` itself.
    pub fn this_process() -> std::io::Result<Launcher> {
        Ok(Launcher::new(
            std::env::current_exe()?,
            std::env::args_os().skip(1).collect(),
        ))
    }

    /// Starts the worker in a process group of its own, logging to the spool's
    /// [`LOG_FILE`]. It is not waited for: it outlives the request, so it must not hold the
    /// request's output open either.
    fn launch(&self, spool: &Spool) -> std::io::Result<Child> {
        use std::os::unix::process::CommandExt;
        let log = File::create(spool.dir().join(LOG_FILE))?;
        Command::new(&self.program)
            .args(&self.args)
            .arg(WORKER_FLAG)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
    }
}

/// Whether a worker holds the lock of `spool`. The lock file is never created here: only
/// a worker does that, as the user the server runs as.
pub fn is_running(spool: &Spool) -> bool {
    let Ok(file) = File::open(spool.lock_path()) else {
        return false;
    };
    matches!(file.try_lock(), Err(TryLockError::WouldBlock))
}

/// Waits until no worker holds `spool`, for at most `timeout`; whether none does then.
pub async fn wait_stopped(spool: &Spool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_running(spool) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(TICK).await;
    }
    true
}

/// A worker this request started, until it is seen to have locked the spool or exited.
#[derive(Debug)]
pub struct Started {
    child: Option<Child>,
}

impl Started {
    /// Whether the worker of `spool` runs, or the one just started is still starting.
    pub fn running(&mut self, spool: &Spool) -> bool {
        if let Some(child) = &mut self.child
            && matches!(child.try_wait(), Ok(None))
        {
            if is_running(spool) {
                self.child = None;
            }
            return true;
        }
        self.child = None;
        is_running(spool)
    }
}

/// Starts a worker for `spool` unless one runs. A worker that cannot be started costs
/// only the speed-up, so that is logged, not returned.
pub fn ensure_running(spool: &Spool, launcher: &Launcher) -> Started {
    if is_running(spool) {
        return Started { child: None };
    }
    match launcher.launch(spool) {
        Ok(child) => Started { child: Some(child) },
        Err(err) => {
            tracing::debug!(%err, "cannot start the read-ahead worker");
            Started { child: None }
        }
    }
}

/// Runs the worker for `spool` until it has nothing left to do; returns at once if another
/// worker holds the spool.
pub async fn run(store: Arc<dyn Store>, source: SourceName, spool: Spool, depth: usize) {
    let Some(_lock) = take_lock(&spool).await else {
        tracing::debug!("another read-ahead worker serves this spool");
        return;
    };
    if let Err(err) = spool.remove_temp_files() {
        tracing::debug!(%err, "cannot clean the spool");
        return;
    }
    let server = ServerWatch::new(&spool);
    let mut tasks = tokio::task::JoinSet::new();
    let mut in_flight = BTreeSet::new();
    let mut given_up = BTreeSet::new();
    let mut asked: Option<(TimelineId, SegmentNo)> = None;
    let mut busy_at = Instant::now();
    loop {
        if server.gone() {
            tracing::debug!("the server stopped or left recovery");
            return;
        }
        if let Some(WalFileName::Segment { tli, segno }) = spool.want()
            && asked != Some((tli, segno))
        {
            // What could not be spooled before may be archived by now.
            given_up.clear();
            asked = Some((tli, segno));
            busy_at = Instant::now();
        }
        if let Some((tli, first)) = asked {
            let seg = spool.segment_size();
            let wanted = (0..depth as u64).filter_map(|k| first.as_u64().checked_add(k));
            for segno in wanted.map(SegmentNo::new) {
                if in_flight.len() >= PARALLEL {
                    break;
                }
                let name = xlog_file_name(tli, segno, seg);
                if in_flight.contains(&segno) || given_up.contains(&segno) || spool.contains(&name)
                {
                    continue;
                }
                let key = WalKey::Segment { tli, segno }.format(&source, seg);
                let (store, spool) = (store.clone(), spool.clone());
                in_flight.insert(segno);
                tasks.spawn(async move {
                    let spooled = spool_one(store.as_ref(), &spool, &key, &name).await;
                    if !spooled && let Err(err) = spool.mark_absent(&name) {
                        tracing::debug!(%err, "cannot mark a segment absent");
                    }
                    (segno, spooled)
                });
            }
        }
        if tasks.is_empty() && busy_at.elapsed() > IDLE_EXIT {
            return;
        }
        tokio::select! {
            Some(done) = tasks.join_next() => {
                busy_at = Instant::now();
                match done {
                    Ok((segno, spooled)) => {
                        in_flight.remove(&segno);
                        if !spooled {
                            given_up.insert(segno);
                        }
                    }
                    Err(err) => {
                        tracing::debug!(%err, "a read-ahead task failed");
                        return;
                    }
                }
            }
            () = tokio::time::sleep(TICK) => {}
        }
    }
}

/// Takes the spool's lock, trying for a moment; `None` when another worker holds it.
async fn take_lock(spool: &Spool) -> Option<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(spool.lock_path())
        .ok()?;
    for _ in 0..LOCK_TRIES {
        match file.try_lock() {
            Ok(()) => return Some(file),
            Err(TryLockError::WouldBlock) => tokio::time::sleep(Duration::from_millis(2)).await,
            Err(TryLockError::Error(err)) => {
                tracing::debug!(%err, "cannot lock the spool");
                return None;
            }
        }
    }
    None
}

/// Fetches one segment into the spool; `false` if it is not archived as a complete
/// segment or cannot be read. Failures only cost the speed-up, so they are logged: the
/// request for that segment reads the store itself and reports them.
async fn spool_one(store: &dyn Store, spool: &Spool, key: &str, name: &str) -> bool {
    match read_object(store, key).await {
        Ok(Some(content)) => {
            let spool = spool.clone();
            let name = name.to_owned();
            let written =
                tokio::task::spawn_blocking(move || spool.put(&name, &content).map(|()| name))
                    .await;
            match written {
                Ok(Ok(name)) => {
                    tracing::debug!(file = name, "read ahead");
                    true
                }
                Ok(Err(err)) => {
                    tracing::debug!(key, %err, "cannot spool a segment read ahead");
                    false
                }
                Err(err) => {
                    tracing::debug!(key, %err, "the spool task failed");
                    false
                }
            }
        }
        // Not archived (yet), or still in pieces.
        Ok(None) => false,
        Err(err) => {
            tracing::debug!(key, %err, "read-ahead failed");
            false
        }
    }
}

/// The server the spool serves, when it ran in recovery as the worker started: the worker
/// stops with it, and when recovery ends.
struct ServerWatch {
    data_dir: Option<PathBuf>,
}

impl ServerWatch {
    fn new(spool: &Spool) -> ServerWatch {
        let data_dir = spool
            .data_dir()
            .filter(|dir| ServerWatch::in_recovery(dir))
            .map(Path::to_path_buf);
        ServerWatch { data_dir }
    }

    fn in_recovery(dir: &Path) -> bool {
        dir.join("postmaster.pid").exists()
            && (dir.join("recovery.signal").exists() || dir.join("standby.signal").exists())
    }

    fn gone(&self) -> bool {
        self.data_dir
            .as_deref()
            .is_some_and(|dir| !ServerWatch::in_recovery(dir))
    }
}
