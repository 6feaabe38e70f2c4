//! A promoted MariaDB server takes over a stream: the last transaction archived from the
//! current server, its place in the new server's binlog, and the switch record that says
//! so. Nothing here writes to the store; a server that lacks an archived transaction is
//! refused before anything is written.

use logship_protocol::archive::key::SourceName;
use logship_protocol::mysql::switch::ServerSwitch;
use logship_protocol::mysql::takeover::{Scan, TakeoverScan, takeover_file};
use logship_protocol::mysql::{
    BINLOG_MAGIC, BinlogFileName, BinlogPos, EventData, EventDecoder, Gtid, GtidPos,
    TransactionTracker, TrxGtid,
};

use crate::mysql::archiver::ArchiveError;
use crate::mysql::catalog::BinlogCatalog;
use crate::mysql::conn::{DumpItem, DumpOptions, DumpStart, MysqlConnection, MysqlError};
use crate::mysql::history::ServerHistory;
use crate::mysql::read::{ArchivedFile, FileReadError};
use crate::store::Store;

/// A server the archive cannot continue on, with the reason and its fix.
#[derive(Debug, thiserror::Error)]
#[error(
    "mysql at {addr} (server_id {server_id}) cannot take over source {source_name:?}: {reason}"
)]
pub struct TakeoverError {
    addr: String,
    server_id: u32,
    source_name: String,
    reason: Refusal,
}

/// Why a server cannot take over.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "its binlog lacks transaction {last}, the last one archived (its gtid_binlog_pos is {server_pos:?}) (point the source at a server that has replicated everything archived, or give this server its own source name or store prefix)"
    )]
    Behind { last: Gtid, server_pos: String },
    #[error(
        "its binlog has transaction {server} where the archive has {last}: their histories diverged (point the source at a server that has replicated everything archived, or give this server its own source name or store prefix)"
    )]
    Diverged { last: Gtid, server: Gtid },
    #[error(
        "its binlog file {file} should hold transaction {last}, the last one archived, but does not (point the source at a server that has replicated everything archived, or give this server its own source name or store prefix)"
    )]
    NotFound { last: Gtid, file: BinlogFileName },
    #[error(
        "it no longer has the binlog holding transaction {last}, the last one archived: its oldest binlog {oldest} starts after it, at {start:?} (take a new base backup with `logship backup`, then move the source's archive aside to start it anew)"
    )]
    Purged {
        last: Gtid,
        oldest: BinlogFileName,
        start: String,
    },
    #[error(
        "the archive holds no transaction of GTID domain {domain} yet, so the point where this server takes over is unknown (point the source back at server_id {current}, or move the source's archive aside to start it anew)"
    )]
    NothingArchived { domain: u32, current: u32 },
    #[error(
        "it answered {query} with {value:?}, not a MariaDB GTID position (check that the server is MariaDB 10.0.2 or later)"
    )]
    Unreadable { query: String, value: String },
}

/// Why a takeover could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Refused(#[from] TakeoverError),
    #[error(transparent)]
    Mysql(#[from] MysqlError),
    #[error(transparent)]
    Archive(#[from] FileReadError),
    #[error(transparent)]
    Event(#[from] ArchiveError),
}

/// Finds where the server behind `conn` (another server of the stream's GTID `domain`)
/// takes over from the archive's current server, reading its binlog with a dump as
/// replica `dump_server_id`. Returns the switch record to write before its binlog.
pub async fn plan_takeover(
    store: &dyn Store,
    source: &SourceName,
    catalog: &BinlogCatalog,
    history: &ServerHistory,
    domain: u32,
    mut conn: MysqlConnection,
    dump_server_id: u32,
) -> Result<ServerSwitch, PlanError> {
    let info = conn.info().clone();
    let addr = conn.addr().to_owned();
    let refuse = |reason| TakeoverError {
        addr: addr.clone(),
        server_id: info.server_id,
        source_name: source.to_string(),
        reason,
    };
    let Some((last, previous_end)) = last_archived(store, source, catalog, history, domain).await?
    else {
        return Err(refuse(Refusal::NothingArchived {
            domain,
            current: history.current().1,
        })
        .into());
    };
    let server_pos: GtidPos = info.gtid_position.parse().map_err(|_| {
        refuse(Refusal::Unreadable {
            query: "@@gtid_binlog_pos".into(),
            value: info.gtid_position.clone(),
        })
    })?;
    if !server_pos.covers(last) {
        return Err(refuse(Refusal::Behind {
            last,
            server_pos: info.gtid_position.clone(),
        })
        .into());
    }

    // The GTID state at each file's start, newest first, back to one that starts at or
    // before the last archived transaction.
    let mut starts = Vec::new();
    for (file, _) in info.binlogs.iter().rev() {
        let query = format!(
            "SELECT BINLOG_GTID_POS('{}', {})",
            file.as_str().replace('\'', "''"),
            BinlogPos::FIRST_EVENT
        );
        let rows = conn.query(&query).await?;
        let value = rows.first().and_then(|row| row.first()).cloned().flatten();
        let Some(start) = value.as_deref().and_then(|v| v.parse::<GtidPos>().ok()) else {
            return Err(refuse(Refusal::Unreadable {
                query,
                value: value.unwrap_or_else(|| "NULL".into()),
            })
            .into());
        };
        let reached = start
            .get(last.domain())
            .is_none_or(|g| g.seq() <= last.seq());
        starts.push((file.clone(), start));
        if reached {
            break;
        }
    }
    starts.reverse();
    let Some(file) = takeover_file(last, &starts).cloned() else {
        let (oldest, start) = starts
            .first()
            .map(|(file, start)| (file.clone(), start.to_string()))
            .unwrap_or_else(|| (info.current.file().clone(), String::new()));
        return Err(refuse(Refusal::Purged {
            last,
            oldest,
            start,
        })
        .into());
    };
    let start = starts
        .iter()
        .find(|(f, _)| f == &file)
        .map(|(_, start)| start.clone())
        .unwrap_or_default();

    let (scan, first) = TakeoverScan::new(last, &file, &start);
    let (found, gtid_pos) = match first {
        Scan::Found(at) => (at, start),
        Scan::Diverged { server } => return Err(refuse(Refusal::Diverged { last, server }).into()),
        Scan::Continue => match scan_file(conn, dump_server_id, &file, &scan, start).await? {
            Some((Scan::Found(at), state)) => (at, state),
            Some((Scan::Diverged { server }, _)) => {
                return Err(refuse(Refusal::Diverged { last, server }).into());
            }
            _ => return Err(refuse(Refusal::NotFound { last, file }).into()),
        },
    };
    Ok(ServerSwitch {
        server_id: info.server_id,
        gtid_pos,
        previous_end,
        start: found,
    })
}

/// The last transaction of `domain` archived from the current server, and the position
/// just past it there: from the newest index that lists one, else where that server took
/// over (its switch record). `None` when the archive holds none.
async fn last_archived(
    store: &dyn Store,
    source: &SourceName,
    catalog: &BinlogCatalog,
    history: &ServerHistory,
    domain: u32,
) -> Result<Option<(Gtid, BinlogPos)>, FileReadError> {
    let (server, _) = history.current();
    let files: Vec<_> = catalog.files(server).collect();
    for (file, objects) in files.into_iter().rev() {
        let archived = ArchivedFile {
            source,
            server,
            file,
            objects,
        };
        let index = archived.index(store).await?;
        let last = index.iter().rev().find_map(|entry| {
            let gtid: Gtid = entry.gtid.as_deref()?.parse().ok()?;
            (gtid.domain() == domain)
                .then(|| (gtid, BinlogPos::new(file.clone(), entry.end.into())))
        });
        if last.is_some() {
            return Ok(last);
        }
    }
    Ok(history
        .switch(server)
        .and_then(|switch| Some((switch.gtid_pos.get(domain)?, switch.start.clone()))))
}

/// Reads `file` through a non-blocking dump from its start, feeding its transactions to
/// `scan` until it finds or refuses, and follows the GTID state from `start` along.
/// `None` when the file ends first.
async fn scan_file(
    conn: MysqlConnection,
    dump_server_id: u32,
    file: &BinlogFileName,
    scan: &TakeoverScan,
    mut state: GtidPos,
) -> Result<Option<(Scan, GtidPos)>, PlanError> {
    let mut options = DumpOptions::new(
        dump_server_id,
        DumpStart::Position(BinlogPos::new(file.clone(), BinlogPos::FIRST_EVENT)),
    );
    options.non_blocking = true;
    let mut stream = conn.start_dump(&options).await?;
    let mut decoder = EventDecoder::new();
    let mut tracker = TransactionTracker::new();
    let mut offset = BINLOG_MAGIC.len() as u64;
    let outcome = loop {
        let DumpItem::Event { event, .. } = stream.next().await? else {
            break None;
        };
        let event = decoder.decode(event, offset).map_err(ArchiveError::from)?;
        if event.is_stream_only() {
            continue;
        }
        if let EventData::Rotate(_) = event.data() {
            break None;
        }
        offset = u64::from(event.header().log_pos);
        let Some(trx) = tracker.push(&event, &BinlogPos::new(file.clone(), offset)) else {
            continue;
        };
        if let TrxGtid::MariaDb(gtid) = trx.gtid {
            state.update(gtid);
        }
        match scan.push(&trx) {
            Scan::Continue => {}
            done => break Some((done, state)),
        }
    };
    stream.close().await;
    Ok(outcome)
}
