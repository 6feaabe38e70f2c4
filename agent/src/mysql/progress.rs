//! What a MySQL/MariaDB source reports to its metrics: the received, durable and server
//! positions as global byte offsets ([`crate::mysql::offsets`]), the server's clock, and
//! the commit time of the newest durable transaction.
//!
//! The archiver calls it as events arrive and uploads finish; the source calls
//! [`BinlogProgress::connected`] after each login.

use std::collections::VecDeque;

use jiff::{SignedDuration, Timestamp};
use logship_protocol::mysql::BinlogFileName;

use crate::metrics::SourceMetrics;
use crate::mysql::archiver::ArchivePos;
use crate::mysql::conn::ServerInfo;
use crate::mysql::offsets::GlobalOffsets;

/// The positions and commit times of one source's binlog, fed to its metrics.
pub struct BinlogProgress {
    metrics: SourceMetrics,
    offsets: GlobalOffsets,
    /// The file being received and where its last event ended.
    receiving: Option<(u32, u32)>,
    /// Commits received but not durable yet: where each ends and when it was committed.
    commits: VecDeque<(ArchivePos, Timestamp)>,
    /// The server's clock minus this host's.
    clock_offset: SignedDuration,
}

impl BinlogProgress {
    /// Progress reported to `metrics`, with positions mapped by `offsets`.
    pub fn new(metrics: SourceMetrics, offsets: GlobalOffsets) -> BinlogProgress {
        BinlogProgress {
            metrics,
            offsets,
            receiving: None,
            commits: VecDeque::new(),
            clock_offset: SignedDuration::ZERO,
        }
    }

    /// The metric handles reported to.
    pub fn metrics(&self) -> &SourceMetrics {
        &self.metrics
    }

    /// A login to the server: the lengths of its closed files, the end of its binlog and
    /// its clock.
    pub fn connected(&mut self, info: &ServerInfo) {
        self.clock_offset = info.clock_offset;
        for (file, size) in &info.binlogs {
            if file != info.current.file() {
                self.offsets.learn(file.index(), *size);
            }
        }
        let end = self
            .offsets
            .global(info.current.file().index(), info.current.offset());
        self.metrics.set_server(end, Some(self.server_now()));
    }

    /// An event of file `file` was received; it ends at `end`. The server has written at
    /// least that much.
    pub fn received(&mut self, file: u32, end: u32) {
        if let Some((previous, len)) = self.receiving
            && previous < file
        {
            // The stream moves on only once a file is complete: its length is known now.
            self.offsets.learn(previous, u64::from(len));
        }
        self.receiving = Some((file, end));
        let at = self.offsets.global(file, u64::from(end));
        self.metrics.set_received_from_server(at, self.server_now());
    }

    /// A heartbeat: the server has sent everything of `log_file` up to `pos`, and is idle.
    pub fn heartbeat(&mut self, log_file: &str, pos: u64) {
        let Ok(file) = BinlogFileName::new(log_file) else {
            return;
        };
        let at = self.offsets.global(file.index(), pos);
        self.metrics.set_server(at, Some(self.server_now()));
    }

    /// A transaction committed at `time` ends at `end`.
    pub fn committed(&mut self, end: ArchivePos, time: Timestamp) {
        self.commits.push_back((end, time));
    }

    /// The archive is durable up to `at` (and so was received up to there).
    pub fn durable(&mut self, at: ArchivePos) {
        let global = self.offsets.global(at.file(), u64::from(at.offset()));
        self.metrics.set_received(global);
        self.metrics.set_durable(global);
        let mut newest = None;
        while let Some(&(end, time)) = self.commits.front() {
            if end > at {
                break;
            }
            newest = Some(time);
            self.commits.pop_front();
        }
        if let Some(time) = newest {
            self.metrics.set_newest_durable_commit(time);
        }
    }

    /// The server's clock now, as far as the offset measured at login tells.
    fn server_now(&self) -> Timestamp {
        Timestamp::now()
            .checked_add(self.clock_offset)
            .unwrap_or_else(|_| Timestamp::now())
    }
}
