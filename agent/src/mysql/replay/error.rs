//! Why a replay failed: one line each, naming the cause and the fix.

use std::time::Duration;

use logship_protocol::mysql::key::ServerNo;
use logship_protocol::mysql::{BinlogError, BinlogFileName, BinlogPos};

use crate::archive::ReadError;
use crate::mysql::conn::MysqlError;
use crate::mysql::read::FileReadError;
use crate::store::StoreError;

/// What to do about a damaged binlog object.
const DAMAGED_FIX: &str =
    "the archived copy is damaged; recover the object from a replica of the store";

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An archived object failed its checks.
    #[error("{}", .0.with_fix(DAMAGED_FIX))]
    Damaged(ReadError),
    #[error(transparent)]
    File(FileReadError),
    /// An archived object holds bytes that are not the binlog events they should be.
    #[error("object {key} is corrupt: {source} ({DAMAGED_FIX})")]
    Events { key: String, source: BinlogError },
    /// The archive holds no binlog of this file.
    #[error(
        "binlog file {file} of server {server} is not in the archive (check the position against `logship list`)"
    )]
    NotArchived {
        server: ServerNo,
        file: BinlogFileName,
    },
    /// The stop position comes before the start.
    #[error("the stop position {stop} is before the start position {from} (give a later target)")]
    StopBeforeStart { from: BinlogPos, stop: BinlogPos },
    /// The archive does not reach a position the replay needs.
    #[error(
        "the archive holds binlog file {file} of server {server} up to offset {durable}, not {wanted} (choose a target the archive reaches: see `logship list`)"
    )]
    BeyondArchive {
        server: ServerNo,
        file: BinlogFileName,
        durable: u64,
        wanted: u64,
    },
    /// A position the replay was given is inside an event.
    #[error(
        "position {pos} is inside the event at {file}:{start}, which ends at {end} (give a transaction boundary from the archive's index)"
    )]
    NotABoundary {
        file: BinlogFileName,
        pos: u64,
        start: u64,
        end: u64,
    },
    /// A file between the start and the stop is missing.
    #[error(
        "the archive of server {server} has no binlog file {missing} between {after} and the stop position (the archive has a gap: see `logship list`)"
    )]
    Gap {
        server: ServerNo,
        after: BinlogFileName,
        missing: BinlogFileName,
    },
    /// The binlog is encrypted (MariaDB `encrypt_binlog`).
    #[error(
        "binlog file {file} is encrypted (START_ENCRYPTION_EVENT); replaying an encrypted binlog is not supported"
    )]
    Encrypted { file: BinlogFileName },
    /// A file does not open with a FORMAT_DESCRIPTION.
    #[error(
        "object {key} does not start with a FORMAT_DESCRIPTION_EVENT at offset 4 ({DAMAGED_FIX})"
    )]
    NoFormatDescription { key: String },
    /// The restored server would skip every event: it has the original's server_id.
    #[error(
        "the restored server has server_id {server_id}, the same as the original server's, so its replication would skip every event (start it with another server_id)"
    )]
    SameServerId { server_id: u32 },
    /// A statement on the restored server failed.
    #[error("replay on the restored server: {0}")]
    Restored(#[from] MysqlError),
    /// The restored server's answer could not be read.
    #[error(
        "replay on the restored server: {what} (is it a MariaDB 10.3 or later, with replication available?)"
    )]
    Status { what: String },
    /// The restored server's replication stopped with an error.
    #[error(
        "the restored server stopped replicating at {at}: {error} (see its error log; fix the cause and run the replay again on a fresh server)"
    )]
    Replication { at: String, error: String },
    /// The restored server made no progress for too long.
    #[error(
        "the restored server applied nothing for {waited:?} at {at} while replaying to {stop} ({threads}; see its error log)"
    )]
    Stalled {
        waited: Duration,
        at: String,
        stop: String,
        threads: String,
    },
    /// The local listener could not be set up.
    #[error("cannot listen on 127.0.0.1 for the replay: {0} (check the machine's network setup)")]
    Listen(std::io::Error),
}

impl From<ReadError> for ReplayError {
    fn from(err: ReadError) -> ReplayError {
        match err {
            ReadError::Store(err) => ReplayError::Store(err),
            damaged => ReplayError::Damaged(damaged),
        }
    }
}

impl From<FileReadError> for ReplayError {
    fn from(err: FileReadError) -> ReplayError {
        match err {
            FileReadError::Read(err) => err.into(),
            other => ReplayError::File(other),
        }
    }
}
