//! Waiting until the archive holds the binlog up to a backup's snapshot: the snapshot's
//! file durable to at least its position, or a later file of the same server archived.

use std::time::{Duration, Instant};

use logship_protocol::archive::key::SourceName;
use logship_protocol::mysql::BinlogPos;
use logship_protocol::mysql::key::ServerNo;

use super::BackupError;
use crate::mysql::catalog::BinlogCatalog;
use crate::store::Store;

/// How often the archive is listed while waiting.
const POLL: Duration = Duration::from_millis(250);

/// Whether `catalog` holds server `server`'s binlog up to `position`.
fn archived(catalog: &BinlogCatalog, server: ServerNo, position: &BinlogPos) -> bool {
    let file = position.file();
    catalog.files(server).any(|(name, objects)| {
        (name.same_base(file) && name.index() > file.index())
            || (name == file
                && objects
                    .durable_len()
                    .is_some_and(|len| u64::from(len) >= position.offset()))
    })
}

/// Waits up to `timeout` for the binlog up to `position` of `server` to be archived.
pub(super) async fn wait_for_binlog(
    store: &dyn Store,
    source: &SourceName,
    server: ServerNo,
    position: &BinlogPos,
    timeout: Duration,
) -> Result<(), BackupError> {
    let started = Instant::now();
    loop {
        let catalog = BinlogCatalog::load(store, source).await?;
        if archived(&catalog, server, position) {
            return Ok(());
        }
        if started.elapsed() >= timeout {
            return Err(BackupError::BinlogNotArchived {
                position: position.clone(),
                server: server.get(),
                waited: timeout,
                source_name: source.to_string(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
