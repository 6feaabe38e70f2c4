//! The prefetch spool: complete segments fetched ahead of PostgreSQL's requests, kept in
//! `pg_wal/logship-spool/` (beside the `%p` PostgreSQL passes) until it asks for them.
//!
//! A spool file is written under a temp name and renamed into place only after its
//! object's CRCs were checked, so a file under a segment's own name is always whole and
//! verified. PostgreSQL runs one `restore_command` at a time, so the spool has one writer.

use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use logship_protocol::pg::segment::WalFileName;
use logship_protocol::pg::{SegmentNo, WalSegSize};

/// The spool directory's name, inside the directory of `%p` (the data directory's `pg_wal`).
pub const SPOOL_DIR: &str = "logship-spool";

/// The suffix of spool files still being written; a crash or an exit may leave them behind.
const TEMP_SUFFIX: &str = ".tmp";

/// Segments fetched ahead, one file per segment, named as PostgreSQL names it.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    seg: WalSegSize,
}

impl Spool {
    /// The spool that serves requests whose destination is `dest` (PostgreSQL's `%p`).
    pub fn beside(dest: &Path, seg: WalSegSize) -> Spool {
        let parent = dest.parent().unwrap_or(Path::new("."));
        Spool {
            dir: parent.join(SPOOL_DIR),
            seg,
        }
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the directory (mode 0700), removes files left half-written and every
    /// segment before `requested`: replay has moved past them.
    pub fn prepare(&self, requested: SegmentNo) -> io::Result<()> {
        match std::fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let stale = name.ends_with(TEMP_SUFFIX)
                || matches!(
                    WalFileName::parse(name, self.seg),
                    Ok(WalFileName::Segment { segno, .. }) if segno < requested
                );
            if stale {
                remove_if_present(&entry.path())?;
            }
        }
        Ok(())
    }

    /// Whether segment file `name` is spooled.
    pub fn contains(&self, name: &str) -> bool {
        self.dir.join(name).is_file()
    }

    /// Moves spooled `name` to `dest`; `false` when it is not spooled. A spool file of
    /// the wrong size (which a verified write never leaves) is dropped and reported absent.
    pub fn take(&self, name: &str, dest: &Path) -> io::Result<bool> {
        let path = self.dir.join(name);
        let len = match std::fs::metadata(&path) {
            Ok(meta) => meta.len(),
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(false),
            Err(err) => return Err(err),
        };
        if len != self.seg.bytes() {
            remove_if_present(&path)?;
            return Ok(false);
        }
        match std::fs::rename(&path, dest) {
            Ok(()) => Ok(true),
            // Another file system: copy, then drop the spooled file.
            Err(err) if err.kind() == ErrorKind::CrossesDevices => {
                let mut temp = dest.as_os_str().to_owned();
                temp.push(TEMP_SUFFIX);
                let temp = PathBuf::from(temp);
                std::fs::copy(&path, &temp)?;
                std::fs::rename(&temp, dest)?;
                remove_if_present(&path)?;
                Ok(true)
            }
            Err(err) => Err(err),
        }
    }

    /// Spools `content`, already verified, as `name`: temp file, fsync, rename.
    pub fn put(&self, name: &str, content: &[u8]) -> io::Result<()> {
        let path = self.dir.join(name);
        let temp = self.dir.join(format!("{name}{TEMP_SUFFIX}"));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut file| {
                file.write_all(content)?;
                file.sync_all()
            })
            .and_then(|()| std::fs::rename(&temp, &path));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written
    }

    /// Removes the spool and everything in it (once recovery no longer needs it).
    pub fn remove(&self) -> io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Err(err) if err.kind() != ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logship_protocol::pg::{TimelineId, xlog_file_name};

    const SEG: WalSegSize = WalSegSize::DEFAULT;

    fn name(segno: u64) -> String {
        xlog_file_name(TimelineId::new(1).unwrap(), SegmentNo::new(segno), SEG)
    }

    #[test]
    fn serves_prunes_and_drops_torn_files() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("RECOVERYXLOG");
        let spool = Spool::beside(&dest, SEG);
        spool.prepare(SegmentNo::new(3)).unwrap();
        let full = vec![7u8; SEG.bytes() as usize];
        spool.put(&name(3), &full).unwrap();
        spool.put(&name(4), &full).unwrap();
        spool.put(&name(5), &full[..10]).unwrap();
        std::fs::write(spool.dir().join("x.tmp"), b"torn").unwrap();

        assert!(spool.take(&name(3), &dest).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), full);
        assert!(!spool.contains(&name(3)));
        // The wrong size is never served.
        assert!(!spool.take(&name(5), &dest).unwrap());
        assert!(!spool.contains(&name(5)));

        spool.prepare(SegmentNo::new(5)).unwrap();
        let left: Vec<_> = std::fs::read_dir(spool.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        spool.remove().unwrap();
        assert!(!spool.dir().exists());
    }
}
