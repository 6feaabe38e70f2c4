//! Makes a restored directory durable: every file and directory under it is fsynced, so a
//! crash after `restore` reports success cannot leave the server a torn or empty file.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Fsyncs every regular file and directory under `root`, `root` itself, and each directory
/// from `root`'s parent up to `up_to` (the parent of the highest directory the restore
/// created), so that the entries naming them are on disk too. Symbolic links are not
/// followed (a tablespace is synced as its own root).
pub fn sync_tree(root: &Path, up_to: &Path) -> Result<(), SyncError> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|err| SyncError::new(&dir, &err))?;
        for entry in entries {
            let entry = entry.map_err(|err| SyncError::new(&dir, &err))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|err| SyncError::new(&path, &err))?;
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() {
                sync_path(&path)?;
            }
        }
        sync_path(&dir)?;
    }
    for ancestor in root.ancestors().skip(1) {
        if ancestor.as_os_str().is_empty() {
            break;
        }
        sync_path(ancestor)?;
        if ancestor == up_to {
            break;
        }
    }
    Ok(())
}

fn sync_path(path: &Path) -> Result<(), SyncError> {
    File::open(path)
        .and_then(|file| file.sync_all())
        .map_err(|err| SyncError::new(path, &err))
}

/// A file or directory that could not be made durable.
#[derive(Debug, thiserror::Error)]
#[error("cannot flush {} to disk: {reason}", path.display())]
pub struct SyncError {
    path: PathBuf,
    reason: String,
}

impl SyncError {
    fn new(path: &Path, err: &io::Error) -> SyncError {
        SyncError {
            path: path.to_path_buf(),
            reason: err.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_a_tree_without_following_links() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("base/1")).unwrap();
        std::fs::write(root.path().join("base/1/1259"), b"page").unwrap();
        std::fs::write(root.path().join("PG_VERSION"), b"15\n").unwrap();
        // A link to a place that does not exist: following it would fail.
        std::os::unix::fs::symlink("/nonexistent/ts", root.path().join("ts")).unwrap();
        sync_tree(root.path(), root.path()).unwrap();
    }

    #[test]
    fn a_missing_root_names_the_path() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("gone");
        let err = sync_tree(&missing, root.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cannot flush {} to disk: No such file or directory (os error 2)",
                missing.display()
            )
        );
    }
}
