//! The embedded default store: each object is a file under one directory.
//!
//! A put writes a temp file beside its target, fsyncs it, renames it into place
//! and fsyncs the directory, so that after a crash a key holds either the old
//! object or the new one, never a torn one (DESIGN.md §1). Temp files start
//! with `.tmp-`, which no key may contain, so `list` can skip them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectInfo, Store, StoreError, TEMP_PREFIX, check_key, check_prefix};

/// A store whose objects are files under a root directory.
#[derive(Debug, Clone)]
pub struct FsStore {
    root: PathBuf,
    url: String,
}

impl FsStore {
    /// A store rooted at `root`; a relative path is resolved against the
    /// current directory now, so that a later `chdir` does not move the store.
    pub fn new(root: impl AsRef<Path>) -> Result<Self, StoreError> {
        let given = root.as_ref();
        let root = std::path::absolute(given).map_err(|e| StoreError::InvalidUrl {
            url: format!("file://{}", given.display()),
            reason: format!("cannot resolve the path: {e}"),
        })?;
        let url = format!("file://{}", root.display());
        Ok(FsStore { root, url })
    }

    /// The directory that holds the objects.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs blocking file I/O off the async runtime; `op` and `key` name the
    /// operation if the task itself fails.
    async fn blocking<T: Send + 'static>(
        &self,
        op: &'static str,
        key: &str,
        work: impl FnOnce(&FsStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| StoreError::Io {
                op,
                url: self.url.clone(),
                key: key.to_owned(),
                source: io::Error::other(format!("the blocking file task failed: {e}")),
            })?
    }

    /// Maps an I/O error on `key`: refused writes name the directory to fix.
    fn write_error(
        &self,
        op: &'static str,
        key: &str,
        dir: &Path,
        source: io::Error,
    ) -> StoreError {
        match source.kind() {
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
                StoreError::NotWritable {
                    path: dir.display().to_string(),
                    source,
                }
            }
            _ => self.io_error(op, key, source),
        }
    }

    fn io_error(&self, op: &'static str, key: &str, source: io::Error) -> StoreError {
        StoreError::Io {
            op,
            url: self.url.clone(),
            key: key.to_owned(),
            source,
        }
    }

    fn put_blocking(&self, key: &str, data: &[u8]) -> Result<(), StoreError> {
        let path = self.root.join(key);
        let dir = path.parent().unwrap_or(&self.root);
        write_durably(dir, &path, data).map_err(|e| self.write_error("write", key, dir, e))
    }

    fn get_blocking(&self, key: &str) -> Result<Bytes, StoreError> {
        match fs::read(self.root.join(key)) {
            Ok(data) => Ok(Bytes::from(data)),
            Err(e) if is_absent(&e) || e.kind() == ErrorKind::IsADirectory => {
                Err(StoreError::NotFound {
                    key: key.to_owned(),
                })
            }
            Err(e) => Err(self.io_error("read", key, e)),
        }
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        // Start at the deepest directory every match must live in.
        let start = prefix
            .rsplit_once('/')
            .map_or(String::new(), |(dir, _)| format!("{dir}/"));
        let mut pending = vec![start];
        let mut found = Vec::new();
        while let Some(dir_key) = pending.pop() {
            let dir = self.root.join(&dir_key);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                // Missing, or removed by a concurrent delete: nothing to list.
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(self.io_error("list", prefix, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| self.io_error("list", prefix, e))?;
                // A name that is not UTF-8 cannot be a key, nor a temp file of ours.
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                let key = format!("{dir_key}{name}");
                let file_type = entry
                    .file_type()
                    .map_err(|e| self.io_error("list", &key, e))?;
                if file_type.is_dir() {
                    let sub = format!("{key}/");
                    if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                        pending.push(sub);
                    }
                } else if file_type.is_file() && key.starts_with(prefix) {
                    match entry.metadata() {
                        Ok(meta) => found.push(ObjectInfo {
                            key,
                            size: meta.len(),
                        }),
                        Err(e) if is_absent(&e) => {}
                        Err(e) => return Err(self.io_error("list", &key, e)),
                    }
                }
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    fn delete_blocking(&self, key: &str) -> Result<(), StoreError> {
        let path = self.root.join(key);
        let dir = path.parent().unwrap_or(&self.root);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(dir).map_err(|e| self.write_error("delete", key, dir, e)),
            Err(e) if is_absent(&e) => Ok(()),
            Err(e) => Err(self.write_error("delete", key, dir, e)),
        }
    }

    fn check_writable_blocking(&self) -> Result<(), StoreError> {
        let probe = self
            .root
            .join(format!("{TEMP_PREFIX}probe-{:016x}", rand::random::<u64>()));
        let result = create_dirs(&self.root)
            .and_then(|()| write_and_sync(&probe, b"logship write probe"))
            .and_then(|()| fs::remove_file(&probe))
            .and_then(|()| sync_dir(&self.root));
        result.map_err(|source| StoreError::NotWritable {
            path: self.root.display().to_string(),
            source,
        })
    }
}

#[async_trait]
impl Store for FsStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        check_key(key)?;
        let owned = key.to_owned();
        self.blocking("write", key, move |s| s.put_blocking(&owned, &data))
            .await
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        check_key(key)?;
        let owned = key.to_owned();
        self.blocking("read", key, move |s| s.get_blocking(&owned))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        check_prefix(prefix)?;
        let owned = prefix.to_owned();
        self.blocking("list", prefix, move |s| s.list_blocking(&owned))
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        let owned = key.to_owned();
        self.blocking("delete", key, move |s| s.delete_blocking(&owned))
            .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.blocking("probe", "", |s| s.check_writable_blocking())
            .await
    }

    fn url(&self) -> &str {
        &self.url
    }
}

/// Whether an error means the path (or one of its parents) does not exist.
fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

/// Replaces `path` (in `dir`) with `data`: temp file, fsync, rename, fsync `dir`.
fn write_durably(dir: &Path, path: &Path, data: &[u8]) -> io::Result<()> {
    create_dirs(dir)?;
    let temp = dir.join(format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>()));
    let result = write_and_sync(&temp, data).and_then(|()| fs::rename(&temp, path));
    if result.is_err() {
        // Best effort: the temp name is invisible to `list` even if this fails.
        let _ = fs::remove_file(&temp);
    }
    result?;
    sync_dir(dir)
}

/// Writes a new file and fsyncs its content.
fn write_and_sync(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

/// Creates `dir` and its missing ancestors, fsyncing the parent of each
/// directory created, so that the new entries survive a crash.
fn create_dirs(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut current = dir;
    loop {
        match fs::metadata(current) {
            Ok(_) => break,
            Err(e) => {
                missing.push(current);
                // Past a non-directory, creating fails with the error worth showing.
                if e.kind() != ErrorKind::NotFound {
                    break;
                }
            }
        }
        match current.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => current = parent,
            _ => break,
        }
    }
    for created in missing.into_iter().rev() {
        match fs::create_dir(created) {
            Ok(()) => {}
            // A concurrent put created it first.
            Err(e) if e.kind() == ErrorKind::AlreadyExists && created.is_dir() => {}
            Err(e) => return Err(e),
        }
        if let Some(parent) = created.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Fsyncs a directory, which makes the entries created or renamed in it durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_put_leaves_no_temp_file_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().join("store")).unwrap();
        store.put("a/b/c", Bytes::from_static(b"x")).await.unwrap();
        store.put("a/b/c", Bytes::from_static(b"y")).await.unwrap();
        let names: Vec<_> = fs::read_dir(dir.path().join("store/a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["c"]);
        assert_eq!(store.get("a/b/c").await.unwrap(), "y");
    }

    #[tokio::test]
    async fn list_skips_temp_files_left_by_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path()).unwrap();
        store.put("a/x", Bytes::from_static(b"x")).await.unwrap();
        fs::write(dir.path().join("a/.tmp-0123456789abcdef"), b"torn").unwrap();
        let keys: Vec<_> = store
            .list("")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["a/x"]);
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new(dir.path().join("store")).unwrap();
        let err = store.put("../escape", Bytes::new()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid store key \"../escape\": it has a '.' or '..' path component (keys are relative '/'-separated paths; this is a bug in logship)"
        );
        assert!(!dir.path().join("escape").exists());
    }
}
