//! Unpacks one tablespace's tar stream into its directory, checking every file against the
//! backup's `backup_manifest` (size and checksum) as its bytes go by.
//!
//! This is blocking code, run on a blocking thread: the `tar` crate reads synchronously.
//! Paths are checked before anything is written: an entry must stay inside the directory
//! and must not be written through a symbolic link, whatever the stream says.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use logship_protocol::pg::manifest::{BackupManifest, ManifestError};
use tar::EntryType;

/// How much of a file is copied at a time.
const COPY_BUFFER: usize = 256 * 1024;

/// A tar stream that cannot be unpacked, or a file that does not match the manifest.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(
        "the tar stream is unreadable: {reason} (the stored backup is damaged; take a new backup)"
    )]
    Tar { reason: String },
    #[error(
        "tar entry {path:?} would be written outside the directory or through a symbolic link (the stored backup is damaged or not PostgreSQL's)"
    )]
    UnsafePath { path: String },
    #[error(
        "tar entry {path:?} is a {kind}, which a PostgreSQL backup never holds (the stored backup is damaged or not PostgreSQL's)"
    )]
    UnsupportedEntry { path: String, kind: String },
    #[error(
        "file \"{path}\" is in the backup but not in its backup_manifest (the backup is damaged; take a new backup)"
    )]
    NotInManifest { path: String },
    #[error(
        "file \"{path}\" is listed in the backup_manifest but missing from the backup (the backup is damaged; take a new backup)"
    )]
    MissingFromBackup { path: String },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot write {path}: {reason} (check free space and permissions there)")]
    Write { path: String, reason: String },
}

/// Unpacks tar streams into directories, checking files against one manifest.
pub struct Extractor {
    manifest: Option<Arc<BackupManifest>>,
    seen: HashSet<String>,
    files: u64,
}

/// What one stream held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files written.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Extractor {
    /// An extractor that checks against `manifest`, or checks nothing when the backup was
    /// taken without one.
    pub fn new(manifest: Option<Arc<BackupManifest>>) -> Extractor {
        Extractor {
            manifest,
            seen: HashSet::new(),
            files: 0,
        }
    }

    /// Unpacks the tar stream `stream` into `root`. `manifest_prefix` is how the manifest
    /// names the stream's root: `""` for the data directory, `pg_tblspc/<oid>/` for a
    /// tablespace. The whole stream is read, the padding after the archive's end included.
    pub fn unpack(
        &mut self,
        stream: impl Read,
        root: &Path,
        manifest_prefix: &str,
    ) -> Result<Unpacked, ExtractError> {
        let mut archive = tar::Archive::new(stream);
        let mut unpacked = Unpacked::default();
        let entries = archive.entries().map_err(tar_err)?;
        for entry in entries {
            let mut entry = entry.map_err(tar_err)?;
            let raw_path = entry.path().map_err(tar_err)?.into_owned();
            let shown = raw_path.display().to_string();
            let Some(relative) = relative_path(&raw_path) else {
                return Err(ExtractError::UnsafePath { path: shown });
            };
            if relative.as_os_str().is_empty() {
                continue;
            }
            let target = root.join(&relative);
            if through_symlink(root, &relative) {
                return Err(ExtractError::UnsafePath { path: shown });
            }
            let mode = entry.header().mode().unwrap_or(0o600) & 0o7777;
            match entry.header().entry_type() {
                EntryType::Directory => make_dir(&target, mode)?,
                EntryType::Regular | EntryType::Continuous => {
                    let name = manifest_name(manifest_prefix, &relative)
                        .ok_or(ExtractError::UnsafePath { path: shown })?;
                    let bytes = self.write_file(&mut entry, &target, &name, mode)?;
                    unpacked.files += 1;
                    unpacked.bytes += bytes;
                }
                EntryType::Symlink => {
                    let link =
                        entry
                            .link_name()
                            .map_err(tar_err)?
                            .ok_or_else(|| ExtractError::Tar {
                                reason: format!("symbolic link {shown:?} has no target"),
                            })?;
                    make_parent(&target)?;
                    std::os::unix::fs::symlink(&link, &target).map_err(write_err(&target))?;
                }
                other => {
                    return Err(ExtractError::UnsupportedEntry {
                        path: shown,
                        kind: format!("{other:?}"),
                    });
                }
            }
        }
        // The stream may go on past the end-of-archive blocks; the feeder waits for all of
        // it to be taken.
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(tar_err)?;
        Ok(unpacked)
    }

    /// Checks that every file the manifest lists was unpacked, once every stream is done.
    pub fn finish(self) -> Result<u64, ExtractError> {
        if let Some(manifest) = self.manifest.as_deref()
            && let Some(missing) = manifest
                .files()
                .iter()
                .find(|file| !self.seen.contains(&file.path))
        {
            return Err(ExtractError::MissingFromBackup {
                path: missing.path.clone(),
            });
        }
        Ok(self.files)
    }

    /// Writes one regular file, feeding its bytes to the manifest entry's verifier.
    fn write_file(
        &mut self,
        content: &mut impl Read,
        target: &Path,
        name: &str,
        mode: u32,
    ) -> Result<u64, ExtractError> {
        let mut verifier = match self.manifest.as_deref() {
            Some(manifest) => Some(
                manifest
                    .file(name)
                    .ok_or_else(|| ExtractError::NotInManifest {
                        path: name.to_owned(),
                    })?
                    .verifier(),
            ),
            None => None,
        };
        make_parent(target)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(target)
            .map_err(write_err(target))?;
        let mut buffer = vec![0; COPY_BUFFER];
        let mut written = 0u64;
        loop {
            let n = content.read(&mut buffer).map_err(tar_err)?;
            let Some(bytes) = buffer.get(..n).filter(|b| !b.is_empty()) else {
                break;
            };
            if let Some(verifier) = verifier.as_mut() {
                verifier.update(bytes);
            }
            file.write_all(bytes).map_err(write_err(target))?;
            written += n as u64;
        }
        if let Some(verifier) = verifier {
            verifier.finish()?;
        }
        // The mode given at creation is masked by the umask; set it exactly.
        fs::set_permissions(target, fs::Permissions::from_mode(mode)).map_err(write_err(target))?;
        self.seen.insert(name.to_owned());
        self.files += 1;
        Ok(written)
    }
}

/// The entry's path made relative and plain: `None` for absolute paths or `..`.
fn relative_path(path: &Path) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(relative)
}

/// Whether any existing ancestor of `relative` below `root` is a symbolic link, which a
/// write would follow out of the directory.
fn through_symlink(root: &Path, relative: &Path) -> bool {
    let mut path = root.to_path_buf();
    let mut components = relative.components().peekable();
    while let Some(component) = components.next() {
        if components.peek().is_none() {
            break;
        }
        path.push(component);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// The manifest's name of a file: `prefix` and the path, `/`-separated; `None` if not UTF-8.
fn manifest_name(prefix: &str, relative: &Path) -> Option<String> {
    let mut name = prefix.to_owned();
    for (i, component) in relative.components().enumerate() {
        if i > 0 {
            name.push('/');
        }
        name.push_str(component.as_os_str().to_str()?);
    }
    Some(name)
}

fn make_dir(path: &Path, mode: u32) -> Result<(), ExtractError> {
    fs::create_dir_all(path).map_err(write_err(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o700)).map_err(write_err(path))
}

fn make_parent(path: &Path) -> Result<(), ExtractError> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent).map_err(write_err(parent)),
        None => Ok(()),
    }
}

fn tar_err(err: io::Error) -> ExtractError {
    ExtractError::Tar {
        reason: err.to_string(),
    }
}

fn write_err(path: &Path) -> impl Fn(io::Error) -> ExtractError + '_ {
    move |err| ExtractError::Write {
        path: path.display().to_string(),
        reason: err.to_string(),
    }
}
