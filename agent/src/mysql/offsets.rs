//! Global byte offsets: one number per binlog position of a server, so that the received,
//! durable and server positions of the metrics compare and subtract as bytes.
//!
//! The global offset of `F:P` is `P` plus the lengths of the server's files from the
//! origin up to, not including, `F`. The origin is the oldest file the archive holds for
//! the server, or the file the archive starts with when it is empty. A file's length is the
//! server's own (its size in `SHOW BINARY LOGS`); logship learns it from the archive, from
//! `SHOW BINARY LOGS` at each connect, and from the stream when a file ends. A file whose
//! length none of them knows (a missing file the server has purged) counts as 0 bytes, and
//! a position before the origin is its offset alone. docs/metrics.md states the same for
//! users.

use std::collections::BTreeMap;

use logship_protocol::mysql::BinlogFileName;
use logship_protocol::mysql::key::ServerNo;

use crate::mysql::catalog::BinlogCatalog;

/// Maps positions of one server's binlog to global byte offsets.
#[derive(Debug, Clone)]
pub struct GlobalOffsets {
    /// The index of the origin file.
    origin: u32,
    /// Known lengths by file index.
    lens: BTreeMap<u32, u64>,
    /// The last lookup: a file index and its global start.
    cached: Option<(u32, u64)>,
}

impl GlobalOffsets {
    /// Offsets counted from the file numbered `origin`, with no length known yet.
    pub fn new(origin: u32) -> GlobalOffsets {
        GlobalOffsets {
            origin,
            lens: BTreeMap::new(),
            cached: None,
        }
    }

    /// Offsets for `server` of the archive in `catalog`, whose stream starts with `first`
    /// when the archive holds nothing of it yet.
    pub fn from_archive(
        catalog: &BinlogCatalog,
        server: ServerNo,
        first: &BinlogFileName,
    ) -> GlobalOffsets {
        let mut files = catalog.files(server).peekable();
        let origin = files.peek().map_or(first.index(), |(name, _)| name.index());
        let mut offsets = GlobalOffsets::new(origin);
        for (name, objects) in files {
            if let Some(len) = objects.complete_len() {
                offsets.learn(name.index(), u64::from(len));
            }
        }
        offsets
    }

    /// Records that file `file` is `len` bytes long. The first length learnt stays: the
    /// sources agree for a byte-exact archive, and offsets must not move under the metrics.
    pub fn learn(&mut self, file: u32, len: u64) {
        if self.lens.contains_key(&file) {
            return;
        }
        self.lens.insert(file, len);
        if self.cached.is_some_and(|(cached, _)| file < cached) {
            self.cached = None;
        }
    }

    /// The global offset of `offset` in file `file`.
    pub fn global(&mut self, file: u32, offset: u64) -> u64 {
        self.start(file).saturating_add(offset)
    }

    /// The global offset of `file`'s first byte.
    fn start(&mut self, file: u32) -> u64 {
        if let Some((cached, start)) = self.cached
            && cached == file
        {
            return start;
        }
        let start = if file <= self.origin {
            0
        } else {
            self.lens
                .range(self.origin..file)
                .fold(0u64, |sum, (_, len)| sum.saturating_add(*len))
        };
        self.cached = Some((file, start));
        start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_lengths_of_earlier_files_from_the_origin() {
        let mut offsets = GlobalOffsets::new(3);
        offsets.learn(2, 1_000_000);
        offsets.learn(3, 400);
        offsets.learn(4, 1000);
        assert_eq!(offsets.global(3, 4), 4);
        assert_eq!(offsets.global(4, 256), 656);
        assert_eq!(offsets.global(5, 4), 1404);
        // A file before the origin is not archived: its offset alone.
        assert_eq!(offsets.global(2, 100), 100);
    }

    #[test]
    fn a_length_learnt_later_moves_the_files_after_it() {
        let mut offsets = GlobalOffsets::new(1);
        assert_eq!(offsets.global(3, 10), 10);
        offsets.learn(2, 500);
        assert_eq!(offsets.global(3, 10), 510);
        offsets.learn(1, 300);
        assert_eq!(offsets.global(3, 10), 810);
        // The first length learnt stays.
        offsets.learn(1, 7);
        assert_eq!(offsets.global(3, 10), 810);
        assert_eq!(offsets.global(1, 10), 10);
    }
}
