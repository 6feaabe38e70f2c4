//! Where `wal-fetch` and `binlog-fetch` write DEST, by what DEST is:
//! - a regular file, or nothing yet: written beside it, fsynced and renamed into place, so
//!   that a reader never sees half a file;
//! - a FIFO or a character device (`/dev/stdout`, `/dev/null`): written through, never
//!   replaced;
//! - a symbolic link: whatever it points to, by the same rules;
//! - `-`: standard output.
//!
//! Anything else (a directory, a socket, a block device) is refused before a byte is read.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::archive::AtomicFile;

/// An open DEST.
pub enum FetchDest {
    /// A regular file, written atomically.
    File(AtomicFile),
    /// A FIFO or character device, written through.
    Stream(File),
    /// Standard output.
    Stdout(io::Stdout),
}

/// What DEST is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    File(PathBuf),
    Stream(PathBuf),
    Stdout,
}

impl FetchDest {
    /// Opens `dest` for writing as its kind asks; refuses a kind it cannot be, with the
    /// reason as the error's text.
    pub fn create(dest: &Path) -> io::Result<FetchDest> {
        Ok(match kind(dest)? {
            Kind::File(path) => FetchDest::File(AtomicFile::create(&path)?),
            Kind::Stream(path) => FetchDest::Stream(OpenOptions::new().write(true).open(path)?),
            Kind::Stdout => FetchDest::Stdout(io::stdout()),
        })
    }

    /// Where a file is renamed into place for `dest`, when `dest` is a regular file or
    /// does not exist yet (through symbolic links: their final target); `None` otherwise.
    pub fn file_path(dest: &Path) -> Option<PathBuf> {
        match kind(dest) {
            Ok(Kind::File(path)) => Some(path),
            _ => None,
        }
    }

    /// Finishes the write: a regular file is made durable and put in place; a stream
    /// is flushed.
    pub fn commit(self) -> io::Result<()> {
        match self {
            FetchDest::File(file) => file.commit(),
            FetchDest::Stream(mut file) => file.flush(),
            FetchDest::Stdout(mut out) => out.flush(),
        }
    }
}

impl Write for FetchDest {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            FetchDest::File(file) => file.write(bytes),
            FetchDest::Stream(file) => file.write(bytes),
            FetchDest::Stdout(out) => out.write(bytes),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            FetchDest::File(file) => file.flush(),
            FetchDest::Stream(file) => file.flush(),
            FetchDest::Stdout(out) => out.flush(),
        }
    }
}

/// Writes `content` to `dest` as [`FetchDest`] does.
pub fn write_dest(dest: &Path, content: &[u8]) -> io::Result<()> {
    let mut out = FetchDest::create(dest)?;
    out.write_all(content)?;
    out.commit()
}

fn kind(dest: &Path) -> io::Result<Kind> {
    if dest.as_os_str() == "-" {
        return Ok(Kind::Stdout);
    }
    // Follows symbolic links: a link is whatever it points to.
    let meta = match std::fs::metadata(dest) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Ok(Kind::File(link_target(dest)?));
        }
        Err(err) => return Err(err),
    };
    let kind = meta.file_type();
    if kind.is_file() {
        Ok(Kind::File(std::fs::canonicalize(dest)?))
    } else if kind.is_fifo() || kind.is_char_device() {
        Ok(Kind::Stream(dest.to_owned()))
    } else {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a block device"
        };
        Err(io::Error::other(format!(
            "it is {what}: give the path of a file, a FIFO, or - for standard output"
        )))
    }
}

/// Where a file at `dest`, which does not exist, is created: through a dangling symbolic
/// link, its target; else `dest` itself.
fn link_target(dest: &Path) -> io::Result<PathBuf> {
    match std::fs::read_link(dest) {
        Ok(target) => Ok(dest.parent().unwrap_or(Path::new("")).join(target)),
        Err(_) => Ok(dest.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_replaced_and_new_ones_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_dest(&path, b"one").unwrap();
        write_dest(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_symlink_is_written_through_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_dest(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink("made", &dangling).unwrap();
        write_dest(&dangling, b"x").unwrap();
        assert_eq!(std::fs::read(dir.path().join("made")).unwrap(), b"x");
    }

    #[test]
    fn a_fifo_is_written_through_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        write_dest(&fifo, b"through").unwrap();
        assert_eq!(reader.join().unwrap(), b"through");
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_directory_is_refused_naming_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = FetchDest::create(dir.path()).err().unwrap();
        assert_eq!(
            err.to_string(),
            "it is a directory: give the path of a file, a FIFO, or - for standard output"
        );
        assert_eq!(FetchDest::file_path(dir.path()), None);
        let new = dir.path().join("new");
        assert_eq!(FetchDest::file_path(&new), Some(new));
    }
}
