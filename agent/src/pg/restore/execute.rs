//! Carries out a restore plan: checks the directories, fetches and verifies the backup,
//! unpacks it, writes the recovery settings and flushes everything to disk. Any failure
//! after the first write empties or removes what was written.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use logship_protocol::archive::backup::BackupMeta;
use logship_protocol::archive::key::{ArchiveKey, SourceName};
use logship_protocol::pg::manifest::BackupManifest;

use crate::archive::read_object;
use crate::pg::localpg::give_to_server_user;
use crate::pg::restore::download::{self, Destination};
use crate::pg::restore::error::RestoreError;
use crate::pg::restore::extract::Extractor;
use crate::pg::restore::plan::{self, RecoveryTarget, RestorePlan, TargetTimeline};
use crate::pg::restore::recovery_conf::{self, RecoverySettings, RestoreCommand, TargetAction};
use crate::pg::restore::tablespace::{
    self, Placement, TABLESPACE_MAP, TablespaceMapping, tablespace_map,
};
use crate::pg::window::load_source;
use crate::restore::dir::{self, CheckedDir, DirError, TargetDir};
use crate::store::Store;

/// What to restore, and where.
#[derive(Debug, Clone)]
pub struct RestoreRequest {
    /// The new data directory.
    pub to: PathBuf,
    /// Where recovery stops.
    pub target: RecoveryTarget,
    /// The timeline recovery follows.
    pub timeline: TargetTimeline,
    /// What the server does at the target.
    pub action: TargetAction,
    /// The port to listen on; the original's when `None`.
    pub port: Option<u16>,
    /// Whether a non-empty `to` may be emptied first.
    pub force: bool,
    /// Tablespaces to restore somewhere other than their original directories.
    pub tablespace_mapping: Vec<TablespaceMapping>,
    /// How the restored server fetches WAL.
    pub restore_command: RestoreCommand,
}

/// A restored data directory, ready to start.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The data directory, absolute.
    pub dir: PathBuf,
    /// The plan that was carried out.
    pub plan: RestorePlan,
    /// The port the restored server listens on.
    pub port: u16,
    /// The files unpacked.
    pub files: u64,
    /// Every directory the restore wrote, data directory first: what [`Restored::discard`]
    /// undoes.
    pub dirs: Vec<TargetDir>,
}

impl Restored {
    /// Undoes the restore, as a failure before this point would have: removes or empties
    /// every directory it wrote, tablespaces first.
    pub fn discard(&self) {
        for dir in self.dirs.iter().rev() {
            dir.discard();
        }
    }
}

/// A progress bar of bytes restored on a terminal's stderr; hidden otherwise.
pub fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} restored, {bytes_per_sec}, {eta} left",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Restores `source` as `request` says: plans first, so that an unreachable target fails
/// before anything is touched.
pub async fn run(
    store: Arc<dyn Store>,
    source: &SourceName,
    request: &RestoreRequest,
    progress: &ProgressBar,
) -> Result<Restored, RestoreError> {
    let loaded = load_source(store.as_ref(), source).await?;
    let plan = plan::plan(
        &loaded.summary,
        &loaded.histories,
        request.target,
        request.timeline,
    )?;
    let restore_command = request.restore_command.render()?;
    let meta = &plan.backup;
    let placements = tablespace::place(meta, &request.tablespace_mapping)?;
    let checked = check_dirs(source, meta, &placements, &request.to, request.force)?;
    let manifest = fetch_manifest(store.as_ref(), source, meta).await?;

    let mut prepared: Vec<TargetDir> = Vec::new();
    let outcome = async {
        let mut destinations = Vec::new();
        for (oid, checked) in checked {
            let dir = checked.prepare()?;
            destinations.push(Destination {
                dir: dir.path().to_path_buf(),
                manifest_prefix: match oid {
                    0 => String::new(),
                    oid => format!("pg_tblspc/{oid}/"),
                },
            });
            prepared.push(dir);
        }
        let data = destinations
            .first()
            .map(|d| d.dir.clone())
            .ok_or_else(|| RestoreError::Task {
                reason: "no data directory was prepared".to_owned(),
            })?;
        progress.set_length(meta.raw_bytes);
        let extractor = Extractor::new(manifest.as_ref().map(|(_, m)| m.clone()));
        let extractor = tokio::select! {
            unpacked = download::restore_streams(store.clone(), source, meta, destinations, extractor, progress) => unpacked?,
            _ = tokio::signal::ctrl_c() => return Err(RestoreError::Interrupted),
        };
        let files = extractor.finish().map_err(|reason| RestoreError::Extract {
            what: "the backup".to_owned(),
            id: meta.id.to_string(),
            reason: Box::new(reason),
        })?;
        let port = request
            .port
            .unwrap_or_else(|| recovery_conf::configured_port(&data));
        finish_dir(
            &data,
            &placements,
            manifest.as_ref().map(|(raw, _)| raw.as_slice()),
        )?;
        let stop = plan::recovery_stop(&plan, &loaded);
        let origin = if stop == plan.target {
            format!("backup {}, {}", meta.id, plan.target)
        } else {
            format!(
                "backup {}, {}, where the archived WAL ends: stop at {stop}, the same state",
                meta.id, plan.target
            )
        };
        let settings = RecoverySettings {
            restore_command,
            target: stop,
            timeline: plan.timeline,
            action: request.action,
            port,
            origin,
        };
        settings
            .write(&data)
            .map_err(|err| RestoreError::WriteConf {
                dir: data.display().to_string(),
                reason: err.to_string(),
            })?;
        for dir in &prepared {
            give_to_server_user(dir.path())
                .await
                .map_err(|err| RestoreError::Ownership {
                    reason: format!("{err:#}"),
                })?;
        }
        let written = prepared.clone();
        tokio::task::spawn_blocking(move || written.iter().try_for_each(TargetDir::sync))
            .await
            .map_err(|err| RestoreError::Task {
                reason: err.to_string(),
            })?
            .map_err(RestoreError::Sync)?;
        Ok(Restored {
            dir: data,
            plan: plan.clone(),
            port,
            files,
            dirs: prepared.clone(),
        })
    }
    .await;
    match outcome {
        Ok(restored) => {
            progress.finish_and_clear();
            Ok(restored)
        }
        Err(err) => {
            progress.abandon();
            for dir in prepared.iter().rev() {
                dir.discard();
            }
            Err(err)
        }
    }
}

/// Checks the data directory and the directory of every tablespace (as `placements` puts
/// them), touching none of them.
fn check_dirs(
    source: &SourceName,
    meta: &BackupMeta,
    placements: &[Placement],
    to: &Path,
    force: bool,
) -> Result<Vec<(u32, CheckedDir)>, RestoreError> {
    let meta_key = ArchiveKey::BackupMeta { id: meta.id }.format(source);
    let corrupt = |reason: String| RestoreError::corrupt(&meta_key, reason);
    match meta.tablespaces.first() {
        None => return Err(corrupt("it lists no tablespace".to_owned())),
        Some(first) if first.oid != 0 => {
            return Err(corrupt(format!(
                "its first tablespace is {}, not the data directory (0)",
                first.oid
            )));
        }
        Some(_) => {}
    }
    for (index, ts) in meta.tablespaces.iter().enumerate().skip(1) {
        if ts.oid == 0 {
            return Err(corrupt("it lists the data directory twice".to_owned()));
        }
        if ts.location.is_none() {
            return Err(corrupt(format!("tablespace {} has no location", ts.oid)));
        }
        if meta
            .tablespaces
            .iter()
            .skip(index + 1)
            .any(|t| t.oid == ts.oid)
        {
            return Err(corrupt(format!("it lists tablespace {} twice", ts.oid)));
        }
    }
    let mut checked = vec![(0, dir::check_data_dir(to, force)?)];
    for placement in placements {
        checked.push((
            placement.oid,
            dir::check_tablespace_dir(placement.oid, &placement.dir, placement.moved)?,
        ));
    }
    // Two tablespaces in one place, or one inside the data directory, would mix their files.
    for (i, (_, a)) in checked.iter().enumerate() {
        for (oid, b) in checked.iter().skip(i + 1) {
            if a.path().starts_with(b.path()) || b.path().starts_with(a.path()) {
                return Err(DirError::Overlap {
                    oid: *oid,
                    dir: a.path().display().to_string(),
                    other: b.path().display().to_string(),
                }
                .into());
            }
        }
    }
    Ok(checked)
}

/// The stored `backup_manifest`, checked against the meta and its own SHA-256: its raw
/// bytes, and parsed. `None` for a backup taken without one.
async fn fetch_manifest(
    store: &dyn Store,
    source: &SourceName,
    meta: &BackupMeta,
) -> Result<Option<(Vec<u8>, Arc<BackupManifest>)>, RestoreError> {
    let Some(expected) = meta.manifest else {
        tracing::warn!(backup = %meta.id, "the backup has no backup_manifest: files are checked by chunk CRC only");
        return Ok(None);
    };
    let key = ArchiveKey::BackupManifest { id: meta.id }.format(source);
    let raw = read_object(store, &key)
        .await?
        .ok_or_else(|| RestoreError::MissingObject { key: key.clone() })?;
    let crc = crc32fast::hash(&raw);
    if raw.len() as u64 != expected.raw_bytes || crc != expected.crc {
        return Err(RestoreError::corrupt(
            &key,
            format!(
                "it holds {} bytes with CRC-32 {crc:08X} but the backup meta records {} bytes with {:08X}",
                raw.len(),
                expected.raw_bytes,
                expected.crc
            ),
        ));
    }
    let manifest = BackupManifest::parse(&raw).map_err(|err| RestoreError::corrupt(&key, err))?;
    Ok(Some((raw, Arc::new(manifest))))
}

/// Links each tablespace into `pg_tblspc/` where `placements` put it, writes the
/// `tablespace_map` anew when a mapping moved one, and keeps the `backup_manifest` beside
/// the files, as `pg_basebackup` does, for `pg_verifybackup` (which then needs
/// `--ignore tablespace_map` after a mapping: the manifest lists the original map).
fn finish_dir(
    data: &Path,
    placements: &[Placement],
    manifest: Option<&[u8]>,
) -> Result<(), RestoreError> {
    let write_err = |path: &Path, err: std::io::Error| RestoreError::WriteConf {
        dir: path.display().to_string(),
        reason: err.to_string(),
    };
    let links = data.join("pg_tblspc");
    for placement in placements {
        let link = links.join(placement.oid.to_string());
        let linked = std::fs::read_link(&link).ok();
        if linked.as_deref() == Some(Path::new(&placement.dir)) {
            continue;
        }
        if linked.is_some() {
            std::fs::remove_file(&link).map_err(|err| write_err(&link, err))?;
        }
        std::fs::create_dir_all(&links).map_err(|err| write_err(&links, err))?;
        std::os::unix::fs::symlink(&placement.dir, &link).map_err(|err| write_err(&link, err))?;
    }
    if placements.iter().any(|p| p.moved) {
        // PostgreSQL links pg_tblspc/ from this file as it starts, replacing the links above.
        let path = data.join(TABLESPACE_MAP);
        write_private(&path, tablespace_map(placements).as_bytes())
            .map_err(|err| write_err(&path, err))?;
    }
    if let Some(raw) = manifest {
        let path = data.join("backup_manifest");
        write_private(&path, raw).map_err(|err| write_err(&path, err))?;
    }
    Ok(())
}

/// Writes `content` to `path` (mode 0600), replacing what was there.
fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(content))
}
