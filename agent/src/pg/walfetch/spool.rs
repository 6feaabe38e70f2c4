//! The prefetch spool: complete segments fetched ahead of PostgreSQL's requests, kept in
//! `pg_wal/logship-spool/` (beside the `%p` PostgreSQL passes) until it asks for them.
//!
//! A spool file is written under a temp name and renamed into place only after its
//! object's CRCs were checked, so a file under a segment's own name is always whole and
//! verified. Its one writer is the [read-ahead worker](super::ahead); the requests
//! (PostgreSQL runs one `restore_command` at a time) take files out of it, say in
//! [`WANT_FILE`] which segment comes next, and read [`ABSENT_SUFFIX`] markers, which the
//! worker leaves for segments it could not spool.

use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use logship_protocol::pg::segment::WalFileName;
use logship_protocol::pg::{SegmentNo, WalSegSize};

/// The spool directory's name, inside the directory of `%p` (the data directory's `pg_wal`).
pub const SPOOL_DIR: &str = "logship-spool";

/// The suffix of spool files still being written; a crash or an exit may leave them behind.
const TEMP_SUFFIX: &str = ".tmp";

/// The suffix of a marker for a segment the worker could not spool: not archived as a
/// complete segment, or unreadable. The request for it then reads the store itself.
const ABSENT_SUFFIX: &str = ".absent";

/// The file naming the first segment the spool should hold, written by each request.
const WANT_FILE: &str = "want";

/// The file the read-ahead worker holds locked while it runs.
const LOCK_FILE: &str = "read-ahead.lock";

/// The file recording the WAL segment size, for requests served without reading the store.
const SEGMENT_SIZE_FILE: &str = "segment-size";

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

    /// The spool beside `dest` if it holds segment file `name`, with the segment size an
    /// earlier request recorded there (see [`Spool::prepare`]).
    pub fn holding(dest: &Path, name: &str) -> Option<Spool> {
        let probe = Spool::beside(dest, WalSegSize::DEFAULT);
        let recorded = std::fs::read_to_string(probe.dir.join(SEGMENT_SIZE_FILE)).ok()?;
        let seg = WalSegSize::new(recorded.trim().parse().ok()?).ok()?;
        let spool = Spool { seg, ..probe };
        spool.contains(name).then_some(spool)
    }

    /// The spool of the server whose data directory is `data`.
    pub fn of_data_dir(data: &Path, seg: WalSegSize) -> Spool {
        Spool {
            dir: data.join("pg_wal").join(SPOOL_DIR),
            seg,
        }
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The WAL segment size.
    pub fn segment_size(&self) -> WalSegSize {
        self.seg
    }

    /// The data directory of the server the spool serves (the parent of `pg_wal`).
    pub fn data_dir(&self) -> Option<&Path> {
        self.dir.parent().and_then(Path::parent)
    }

    /// The file the read-ahead worker holds locked while it runs.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    /// Creates the directory (mode 0700), records the segment size in it, and drops every
    /// segment, and every marker, before `requested`: replay has moved past them.
    pub fn prepare(&self, requested: SegmentNo) -> io::Result<()> {
        match std::fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
        let size = self.seg.bytes().to_string();
        let path = self.dir.join(SEGMENT_SIZE_FILE);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(size.as_str()) {
            // Not a TEMP_SUFFIX name: the worker removes those.
            let temp = self.dir.join(format!("{SEGMENT_SIZE_FILE}.new"));
            std::fs::write(&temp, &size)?;
            std::fs::rename(&temp, &path)?;
        }
        self.remove_matching(|name| {
            let name = name.strip_suffix(ABSENT_SUFFIX).unwrap_or(name);
            matches!(
                WalFileName::parse(name, self.seg),
                Ok(WalFileName::Segment { segno, .. }) if segno < requested
            )
        })
    }

    /// Removes files left half-written by a worker that is gone; only the worker itself
    /// calls this, while it holds the lock.
    pub fn remove_temp_files(&self) -> io::Result<()> {
        self.remove_matching(|name| name.ends_with(TEMP_SUFFIX))
    }

    fn remove_matching(&self, stale: impl Fn(&str) -> bool) -> io::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_str().is_some_and(&stale) {
                remove_if_present(&entry.path())?;
            }
        }
        Ok(())
    }

    /// Records `name` as the first segment the spool should hold from now on.
    pub fn set_want(&self, name: &str) -> io::Result<()> {
        // Not a TEMP_SUFFIX name: the worker removes those.
        let temp = self.dir.join(format!("{WANT_FILE}.new"));
        std::fs::write(&temp, name)?;
        std::fs::rename(&temp, self.dir.join(WANT_FILE))
    }

    /// The first segment the spool should hold, as last recorded; `None` before any.
    pub fn want(&self) -> Option<WalFileName> {
        let name = std::fs::read_to_string(self.dir.join(WANT_FILE)).ok()?;
        WalFileName::parse(name.trim(), self.seg).ok()
    }

    /// Marks segment `name` as one the worker could not spool.
    pub fn mark_absent(&self, name: &str) -> io::Result<()> {
        std::fs::write(self.absent_path(name), b"")
    }

    /// Whether the worker marked segment `name` as one it could not spool. The marker
    /// stays until replay passes the segment (see [`Spool::prepare`]), so that a request
    /// repeated for the same file, as PostgreSQL repeats one at the end of the archive, sees
    /// it too.
    pub fn is_absent(&self, name: &str) -> bool {
        self.absent_path(name).exists()
    }

    fn absent_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{ABSENT_SUFFIX}"))
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
            return written;
        }
        // Archived since it was marked: the marker would only send requests to the store.
        remove_if_present(&self.absent_path(name))
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

        // Found without knowing the segment size, which the spool recorded; a wrong size
        // is still never served.
        spool.put(&name(6), &full[..10]).unwrap();
        let found = Spool::holding(&dest, &name(6)).unwrap();
        assert_eq!(found.segment_size(), SEG);
        assert!(!found.take(&name(6), &dest).unwrap());
        assert!(Spool::holding(&dest, &name(6)).is_none());

        spool.mark_absent(&name(4)).unwrap();
        spool.prepare(SegmentNo::new(7)).unwrap();
        spool.remove_temp_files().unwrap();
        let left: Vec<_> = std::fs::read_dir(spool.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["segment-size"]);
        spool.remove().unwrap();
        assert!(!spool.dir().exists());
    }

    #[test]
    fn records_the_next_segment_and_absence_markers() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::of_data_dir(dir.path(), SEG);
        assert_eq!(spool.data_dir(), Some(dir.path()));
        std::fs::create_dir_all(spool.dir()).unwrap();
        assert_eq!(spool.want(), None);
        spool.set_want(&name(9)).unwrap();
        assert_eq!(
            spool.want(),
            Some(WalFileName::Segment {
                tli: TimelineId::new(1).unwrap(),
                segno: SegmentNo::new(9)
            })
        );
        // A worker's clean-up never removes what a request is writing.
        spool.remove_temp_files().unwrap();
        assert!(spool.want().is_some());
        assert!(!spool.is_absent(&name(9)));
        spool.mark_absent(&name(9)).unwrap();
        // Every request for it sees the marker, until the segment is spooled after all.
        assert!(spool.is_absent(&name(9)));
        assert!(spool.is_absent(&name(9)));
        spool.put(&name(9), &[0; 16]).unwrap();
        assert!(!spool.is_absent(&name(9)));
    }
}
