//! The binlog a restore replays after a backup's snapshot, as legs of one server each, and
//! the search of their transaction indexes for the stop point.
//!
//! The first leg runs on the snapshot's server from the snapshot's position. When a
//! promoted server took the stream over later, that server's leg starts where its switch
//! record says it took over, and the leg before it ends where the old server's archived
//! transactions end (`previous_end`).

use logship_protocol::archive::key::SourceName;
use logship_protocol::mysql::BinlogPos;
use logship_protocol::mysql::key::ServerNo;

use crate::mysql::catalog::BinlogCatalog;
use crate::mysql::history::ServerHistory;
use crate::mysql::read::{ArchivedFile, FileReadError};
use crate::mysql::restore::plan::Snapshot;
use crate::mysql::restore::target::{
    BinlogTarget, Fed, StopPoint, StopSearch, TargetError, position_le,
};
use crate::store::Store;

/// One server's stretch of the binlog a restore replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    /// The server whose archived files hold it.
    pub server: ServerNo,
    /// Where it starts: just past the last transaction already restored.
    pub from: BinlogPos,
    /// Where it ends, when a later server took over; `None` for the newest server.
    pub to: Option<BinlogPos>,
}

/// The legs from `snapshot` to the end of the archive.
pub fn route(history: &ServerHistory, catalog: &BinlogCatalog, snapshot: &Snapshot) -> Vec<Leg> {
    let mut legs = vec![Leg {
        server: snapshot.server,
        from: snapshot.pos.clone(),
        to: None,
    }];
    for server in catalog.servers().filter(|&s| s > snapshot.server) {
        let Some(switch) = history.switch(server) else {
            continue;
        };
        if let Some(last) = legs.last_mut() {
            last.to = Some(switch.previous_end.clone());
        }
        legs.push(Leg {
            server,
            from: switch.start.clone(),
            to: None,
        });
    }
    legs
}

/// Why the stop point could not be found.
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error(transparent)]
    Read(#[from] FileReadError),
    #[error(transparent)]
    Target(#[from] TargetError),
}

/// Where a restore stops: the legs it replays, the last one cut at the stop point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// The legs to replay, in order; the last ends at `point` (or they are empty of
    /// transactions when `point` is `None`).
    pub legs: Vec<Leg>,
    /// The last transaction to restore; `None` to stop at the snapshot itself.
    pub point: Option<(ServerNo, StopPoint)>,
}

/// Searches the indexes along `legs` for the stop point of `target`, reading one file's
/// index at a time.
pub async fn find_stop(
    store: &dyn Store,
    source: &SourceName,
    catalog: &BinlogCatalog,
    legs: Vec<Leg>,
    target: &BinlogTarget,
) -> Result<Stop, StopError> {
    let mut search = StopSearch::new(target);
    let mut last_leg = 0;
    'legs: for (n, leg) in legs.iter().enumerate() {
        for (file, objects) in catalog.files(leg.server) {
            if file.index() < leg.from.file().index() {
                continue;
            }
            if let Some(to) = &leg.to
                && file.index() > to.file().index()
            {
                break;
            }
            let archived = ArchivedFile {
                source,
                server: leg.server,
                file,
                objects,
            };
            for entry in archived.index(store).await? {
                let end = BinlogPos::new(file.clone(), u64::from(entry.end));
                if position_le(&end, &leg.from) {
                    continue;
                }
                if leg.to.as_ref().is_some_and(|to| !position_le(&end, to)) {
                    break;
                }
                let fed = search.feed(file, &entry);
                if fed != Fed::Refused {
                    last_leg = n;
                }
                if !fed.wants_more() {
                    break 'legs;
                }
            }
        }
    }
    let point = search.finish()?;
    let mut legs = legs;
    match &point {
        Some(point) => {
            legs.truncate(last_leg + 1);
            if let Some(last) = legs.last_mut() {
                last.to = Some(point.pos.clone());
            }
        }
        None => legs.truncate(1),
    }
    let server = legs.last().map_or(ServerNo::FIRST, |leg| leg.server);
    Ok(Stop {
        point: point.map(|p| (server, p)),
        legs,
    })
}
