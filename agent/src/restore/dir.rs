//! The directories a restore writes: the new data directory and each tablespace's
//! directory. Each is checked before anything is written, created with mode 0700, and
//! emptied or removed again if the restore fails, so that a failed restore never leaves a
//! half-restored directory that looks like a cluster.

use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::restore::sync::{SyncError, sync_tree};

/// A directory that cannot receive a restore.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error(
        "directory {dir} is not empty (choose an empty directory, or pass --force to replace its contents)"
    )]
    NotEmpty { dir: String },
    #[error(
        "tablespace {oid} goes to {dir}, its directory on the original server, which is not empty (the original may still use it: restore the tablespace elsewhere with --tablespace-mapping {dir}=NEWDIR)"
    )]
    TablespaceNotEmpty { oid: u32, dir: String },
    #[error(
        "tablespace {oid} is mapped to {dir}, which is not empty (choose an empty or new NEWDIR in --tablespace-mapping)"
    )]
    MappedTablespaceNotEmpty { oid: u32, dir: String },
    #[error("{dir} exists and is not a directory (choose a directory path for the restore)")]
    NotADirectory { dir: String },
    #[error(
        "tablespace {oid} has the relative location {location:?} in the backup meta (the meta object is corrupt)"
    )]
    RelativeTablespace { oid: u32, location: String },
    #[error(
        "directory {dir} and the directory {other} of tablespace {oid} lie inside one another (choose a --to outside every tablespace's directory)"
    )]
    Overlap {
        oid: u32,
        dir: String,
        other: String,
    },
    #[error(
        "cannot prepare directory {dir}: {reason} (check that its parent exists and is writable)"
    )]
    Io { dir: String, reason: String },
}

/// What a directory held before the restore, and so what undoing the restore means.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Origin {
    /// The restore created it, and the missing parents above it up to `top`: undo removes
    /// `top`.
    Created { top: PathBuf },
    /// It existed (empty, or emptied by `--force`): undo empties it.
    Existed,
}

/// A directory a restore is writing into.
#[derive(Debug, Clone)]
pub struct TargetDir {
    path: PathBuf,
    origin: Origin,
}

/// A directory checked to be usable, not yet touched.
#[derive(Debug)]
pub struct CheckedDir {
    path: PathBuf,
    exists: bool,
    clear: bool,
}

/// Checks the new data directory without touching it: it must not exist, or be an empty
/// directory, or `force` must allow replacing what it holds.
pub fn check_data_dir(dir: &Path, force: bool) -> Result<CheckedDir, DirError> {
    let path = absolute(dir)?;
    let exists = is_dir(&path)?;
    let clear = exists && !is_empty(&path)?;
    if clear && !force {
        return Err(DirError::NotEmpty {
            dir: path.display().to_string(),
        });
    }
    Ok(CheckedDir {
        path,
        exists,
        clear,
    })
}

/// Checks the directory a tablespace is restored into: it must not exist or be empty.
/// `--force` never applies here, since the original server may be using it. `moved` says
/// whether a `--tablespace-mapping` chose it, rather than the backup meta.
pub fn check_tablespace_dir(oid: u32, location: &str, moved: bool) -> Result<CheckedDir, DirError> {
    let path = PathBuf::from(location);
    if !path.is_absolute() {
        return Err(DirError::RelativeTablespace {
            oid,
            location: location.to_owned(),
        });
    }
    let exists = is_dir(&path)?;
    if exists && !is_empty(&path)? {
        let dir = path.display().to_string();
        return Err(if moved {
            DirError::MappedTablespaceNotEmpty { oid, dir }
        } else {
            DirError::TablespaceNotEmpty { oid, dir }
        });
    }
    Ok(CheckedDir {
        path,
        exists,
        clear: false,
    })
}

impl CheckedDir {
    /// The absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Empties (with `--force`) or creates the directory, and sets its mode to 0700.
    pub fn prepare(self) -> Result<TargetDir, DirError> {
        let io_err = |err: io::Error| DirError::Io {
            dir: self.path.display().to_string(),
            reason: err.to_string(),
        };
        let origin = if self.exists {
            if self.clear {
                clear(&self.path).map_err(io_err)?;
            }
            Origin::Existed
        } else {
            // The highest directory missing on the way down: undo removes it, and syncing
            // the restore reaches up to its parent.
            let top = self
                .path
                .ancestors()
                .take_while(|dir| !dir.exists())
                .last()
                .unwrap_or(&self.path)
                .to_path_buf();
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent).map_err(io_err)?;
            }
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&self.path)
                .map_err(io_err)?;
            Origin::Created { top }
        };
        let dir = TargetDir {
            path: self.path.clone(),
            origin,
        };
        if let Err(err) =
            std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o700))
        {
            dir.discard();
            return Err(io_err(err));
        }
        Ok(dir)
    }
}

impl TargetDir {
    /// The absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Undoes the restore: removes the directory, and the parents the restore created for
    /// it, if the restore created it, else empties it. Best effort, since it runs while
    /// another error is being reported; what it could not remove is logged.
    pub fn discard(&self) {
        let (dir, result) = match &self.origin {
            Origin::Created { top } => (top, std::fs::remove_dir_all(top)),
            Origin::Existed => (&self.path, clear(&self.path)),
        };
        if let Err(err) = result
            && err.kind() != ErrorKind::NotFound
        {
            tracing::error!(dir = %dir.display(), %err, "cannot remove what the failed restore wrote; remove it by hand");
        }
    }

    /// Fsyncs everything in the directory, and the directories whose entries name it, up
    /// to the first one the restore did not create.
    pub fn sync(&self) -> Result<(), SyncError> {
        let top = match &self.origin {
            Origin::Created { top } => top,
            Origin::Existed => &self.path,
        };
        sync_tree(&self.path, top.parent().unwrap_or(top))
    }
}

/// Removes everything inside `dir`, never following symbolic links out of it.
fn clear(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn absolute(dir: &Path) -> Result<PathBuf, DirError> {
    std::path::absolute(dir).map_err(|err| DirError::Io {
        dir: dir.display().to_string(),
        reason: err.to_string(),
    })
}

/// Whether `path` is an existing directory; `false` when nothing is there.
fn is_dir(path: &Path) -> Result<bool, DirError> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(true),
        Ok(_) => Err(DirError::NotADirectory {
            dir: path.display().to_string(),
        }),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(false),
        Err(err) => Err(DirError::Io {
            dir: path.display().to_string(),
            reason: err.to_string(),
        }),
    }
}

fn is_empty(path: &Path) -> Result<bool, DirError> {
    std::fs::read_dir(path)
        .map(|mut entries| entries.next().is_none())
        .map_err(|err| DirError::Io {
            dir: path.display().to_string(),
            reason: err.to_string(),
        })
}
