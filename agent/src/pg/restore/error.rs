//! Why a restore failed: one line naming the cause, the object or file concerned, and the fix.

use crate::archive::ReadError;
use crate::pg::restore::extract::ExtractError;
use crate::pg::restore::plan::PlanError;
use crate::pg::restore::recovery_conf::ConfError;
use crate::pg::restore::tablespace::MappingError;
use crate::pg::window::WindowError;
use crate::restore::dir::DirError;
use crate::restore::sync::SyncError;
use crate::store::StoreError;

/// What to do about a damaged backup object.
const DAMAGED_BACKUP_FIX: &str = "the stored backup is damaged; pick a target another backup \
     reaches, see logship list, or take a new backup";

/// Why a restore failed; the directories it wrote are emptied or removed by then.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Window(Box<WindowError>),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Conf(#[from] ConfError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error(
        "object {key} is missing from the store (the backup is incomplete or was pruned; pick a target another backup reaches, see logship list)"
    )]
    MissingObject { key: String },
    /// A backup object that cannot be used.
    #[error("{}", .0.with_fix(DAMAGED_BACKUP_FIX))]
    Damaged(ReadError),
    #[error("restoring {what} of backup {id}: {reason}")]
    Extract {
        what: String,
        id: String,
        reason: Box<ExtractError>,
    },
    #[error(
        "cannot write the recovery settings into {dir}: {reason} (check free space and permissions there)"
    )]
    WriteConf { dir: String, reason: String },
    #[error("{0} (check the disk with dmesg, then run the restore again)")]
    Sync(SyncError),
    #[error("the restore was interrupted, and what it had written was removed (run it again)")]
    Interrupted,
    #[error("{reason}")]
    Ownership { reason: String },
    #[error(
        "the restore stopped unexpectedly: {reason} (this is a bug in logship; retry the restore)"
    )]
    Task { reason: String },
}

impl RestoreError {
    /// The backup object at `key` is damaged because of `reason`.
    pub(crate) fn corrupt(key: &str, reason: impl std::fmt::Display) -> RestoreError {
        RestoreError::Damaged(ReadError::damaged(key, reason, false))
    }
}

impl From<ReadError> for RestoreError {
    fn from(err: ReadError) -> RestoreError {
        match err {
            ReadError::Store(err) => RestoreError::Store(err),
            damaged => RestoreError::Damaged(damaged),
        }
    }
}

impl From<WindowError> for RestoreError {
    fn from(err: WindowError) -> RestoreError {
        RestoreError::Window(Box::new(err))
    }
}
