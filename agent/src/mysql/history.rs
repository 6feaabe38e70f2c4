//! The servers a MariaDB source has followed: server 1 is the identity's `server_id`, and
//! each switch record names the next one and where it took over.

use std::collections::BTreeMap;

use logship_protocol::archive::key::SourceName;
use logship_protocol::archive::object::{self, Codec};
use logship_protocol::mysql::key::{self as binlog_key, ServerNo};
use logship_protocol::mysql::switch::ServerSwitch;

use crate::archive::{ReadError, read_object};
use crate::store::{Store, StoreError};

/// What to do about a damaged switch record.
const DAMAGED_SWITCH_FIX: &str = "restore it from a copy of the store, or move the source's \
     prefix aside";

/// Why the server history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}", .0.with_fix(DAMAGED_SWITCH_FIX))]
    Damaged(ReadError),
}

impl From<ReadError> for HistoryError {
    fn from(err: ReadError) -> HistoryError {
        match err {
            ReadError::Store(err) => HistoryError::Store(err),
            damaged => HistoryError::Damaged(damaged),
        }
    }
}

/// Server numbers and the servers behind them.
#[derive(Debug, Clone)]
pub struct ServerHistory {
    first_server_id: u32,
    switches: BTreeMap<ServerNo, ServerSwitch>,
}

impl ServerHistory {
    /// Reads every switch record of `source`, whose first server is `first_server_id`.
    pub async fn load(
        store: &dyn Store,
        source: &SourceName,
        first_server_id: u32,
    ) -> Result<ServerHistory, HistoryError> {
        let mut switches = BTreeMap::new();
        for listed in store.list(&binlog_key::switches_prefix(source)).await? {
            let Ok((_, server)) = binlog_key::parse_switch_key(&listed.key) else {
                tracing::warn!(key = %listed.key, "ignoring unexpected object");
                continue;
            };
            let Some(content) = read_object(store, &listed.key).await? else {
                continue;
            };
            let switch = ServerSwitch::parse(&content)
                .map_err(|e| ReadError::damaged(&listed.key, &e, e.is_unsupported()))?;
            switches.insert(server, switch);
        }
        Ok(ServerHistory {
            first_server_id,
            switches,
        })
    }

    /// The newest server: its number and `server_id`.
    pub fn current(&self) -> (ServerNo, u32) {
        match self.switches.iter().next_back() {
            Some((&server, switch)) => (server, switch.server_id),
            None => (ServerNo::FIRST, self.first_server_id),
        }
    }

    /// The `server_id` of server `server`.
    pub fn server_id(&self, server: ServerNo) -> u32 {
        self.switch(server)
            .map_or(self.first_server_id, |switch| switch.server_id)
    }

    /// Where `server` took over; `None` for server 1.
    pub fn switch(&self, server: ServerNo) -> Option<&ServerSwitch> {
        self.switches.get(&server)
    }
}

/// Records that `server` takes over as `switch` says: written before any of its binlog.
pub async fn record_switch(
    store: &dyn Store,
    source: &SourceName,
    server: ServerNo,
    switch: &ServerSwitch,
) -> Result<(), StoreError> {
    let stored = object::encode(&switch.encode(), Codec::None);
    store
        .put(&binlog_key::switch_key(source, server), stored.into())
        .await
}
