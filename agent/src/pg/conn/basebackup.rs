//! BASE_BACKUP over the replication connection: the result sets before the copy (start
//! position, tablespaces), the COPY OUT stream decoded by
//! [`BackupStreamMessage::parse`], and the result set after it (end position).

use std::str::FromStr;

use bytes::Bytes;
use logship_protocol::pg::basebackup::{
    BackupStreamMessage, BaseBackupOptions, base_backup_command,
};
use logship_protocol::pg::{Lsn, TimelineId};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::auth;
use super::connection::{ReplicationConnection, row_values};
use super::error::{DbError, Kind, PgError};
use super::streaming::Mode;
use super::wire::Backend;

/// The command word in errors; the label is left out, as it is the user's text.
const COMMAND: &str = "BASE_BACKUP";

/// One row of the tablespace result set the server sends before the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablespaceInfo {
    /// The tablespace's OID; `None` for the main data directory.
    pub oid: Option<u32>,
    /// The tablespace's directory on the server; `None` for the main data directory.
    pub location: Option<String>,
    /// The server's size estimate in kB, sent with `PROGRESS`.
    pub size_kb: Option<u64>,
}

/// Where the backup starts, and what it will send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStart {
    /// The backup's start LSN: the redo point of its checkpoint.
    pub start_lsn: Lsn,
    /// The timeline of `start_lsn`.
    pub timeline: TimelineId,
    /// One entry per archive the stream will carry.
    pub tablespaces: Vec<TablespaceInfo>,
}

/// Where the backup ends: the first position at which a restore of it is consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupEnd {
    /// The backup's end LSN.
    pub end_lsn: Lsn,
    /// The timeline of `end_lsn`.
    pub timeline: TimelineId,
}

/// A base backup in progress: read it with [`BaseBackupStream::next`] until `None`, then
/// take its end with [`BaseBackupStream::finish`]. Dropping it early leaves the connection
/// unusable; the server aborts the backup when the connection closes.
pub struct BaseBackupStream<'a> {
    conn: &'a mut ReplicationConnection,
    start: BackupStart,
    end: Option<BackupEnd>,
}

impl ReplicationConnection {
    /// Sends BASE_BACKUP and reads up to the start of its COPY OUT stream.
    pub async fn base_backup(
        &mut self,
        options: &BaseBackupOptions,
    ) -> Result<BaseBackupStream<'_>, PgError> {
        if !matches!(self.mode, Mode::Command) {
            return Err(self.error(
                COMMAND,
                Kind::Protocol("BASE_BACKUP while not in command mode".to_string()),
            ));
        }
        // Until ReadyForQuery ends the command, nothing else may use the connection.
        self.mode = Mode::Done;
        match self.read_backup_start(options).await {
            Ok(start) => Ok(BaseBackupStream {
                conn: self,
                start,
                end: None,
            }),
            Err(kind) => Err(self.fail(kind).await),
        }
    }

    /// Sends the command and reads the start and tablespace result sets, up to CopyOutResponse.
    async fn read_backup_start(
        &mut self,
        options: &BaseBackupOptions,
    ) -> Result<BackupStart, Kind> {
        frontend::query(&base_backup_command(options), self.wire.out())
            .map_err(|e| Kind::Protocol(format!("cannot encode the command: {e}")))?;
        self.wire.flush().await?;
        let mut result_sets: Vec<Vec<Vec<Option<Bytes>>>> = Vec::new();
        loop {
            match self.read_message().await? {
                Message::RowDescription(_) => result_sets.push(Vec::new()),
                Message::DataRow(body) => match result_sets.last_mut() {
                    Some(rows) => rows.push(row_values(&body)?),
                    None => return Err(protocol("a data row before its row description")),
                },
                Message::CopyOutResponse(_) => break,
                Message::CommandComplete(_) => {}
                Message::ReadyForQuery(_) => {
                    return Err(protocol("the command ended before the backup started"));
                }
                _ => return Err(protocol("unexpected message before the backup data")),
            }
        }
        let [start_rows, tablespace_rows] = result_sets.as_slice() else {
            return Err(protocol(&format!(
                "{} result sets before the backup data where two were expected",
                result_sets.len()
            )));
        };
        let [start_row] = start_rows.as_slice() else {
            return Err(protocol("the start position result set is not one row"));
        };
        let tablespaces = tablespace_rows
            .iter()
            .map(|row| {
                Ok(TablespaceInfo {
                    oid: optional(row, 0, "spcoid")?,
                    location: optional(row, 1, "spclocation")?,
                    size_kb: optional(row, 2, "size")?,
                })
            })
            .collect::<Result<_, Kind>>()?;
        Ok(BackupStart {
            start_lsn: required(start_row, 0, "recptr")?,
            timeline: timeline(start_row, 1)?,
            tablespaces,
        })
    }

    /// The next message that matters to a command, with notices logged on the way.
    async fn read_message(&mut self) -> Result<Message, Kind> {
        loop {
            match self.wire.read().await? {
                Backend::Message(Message::NoticeResponse(body)) => auth::log_notice(&body),
                Backend::Message(Message::ParameterStatus(_)) => {}
                Backend::Message(Message::ErrorResponse(body)) => {
                    let db = DbError::parse(&mut body.fields())
                        .map_err(|e| Kind::Protocol(e.to_string()))?;
                    return Err(Kind::Server {
                        db: Box::new(db),
                        explain: None,
                    });
                }
                Backend::Message(message) => return Ok(message),
                Backend::CopyBothResponse => return Err(protocol("a CopyBothResponse")),
            }
        }
    }

    /// Turns a failure into the error; after a server error, reads on to ReadyForQuery so
    /// that the connection takes commands again.
    async fn fail(&mut self, kind: Kind) -> PgError {
        if matches!(kind, Kind::Server { .. }) {
            loop {
                match self.wire.read().await {
                    Ok(Backend::Message(Message::ReadyForQuery(_))) => {
                        self.mode = Mode::Command;
                        break;
                    }
                    Ok(_) => {}
                    // A FATAL error closes the connection right after the ErrorResponse.
                    Err(_) => break,
                }
            }
        }
        self.error(COMMAND, kind)
    }
}

impl BaseBackupStream<'_> {
    /// Where the backup starts, and the tablespaces it holds.
    pub fn start(&self) -> &BackupStart {
        &self.start
    }

    /// The next message of the stream; `None` once the server has ended it and reported
    /// the end position (then call [`BaseBackupStream::finish`]).
    pub async fn next(&mut self) -> Result<Option<BackupStreamMessage>, PgError> {
        if self.end.is_some() {
            return Ok(None);
        }
        let step = async {
            match self.conn.read_message().await? {
                Message::CopyData(body) => BackupStreamMessage::parse(body.into_bytes())
                    .map(Some)
                    .map_err(|e| Kind::Protocol(e.to_string())),
                Message::CopyDone => {
                    self.end = Some(self.read_end().await?);
                    Ok(None)
                }
                _ => Err(protocol("unexpected message in the backup stream")),
            }
        };
        match step.await {
            Ok(message) => Ok(message),
            Err(kind) => Err(self.conn.fail(kind).await),
        }
    }

    /// The end position, once [`BaseBackupStream::next`] has returned `None`.
    pub fn finish(self) -> Result<BackupEnd, PgError> {
        self.end.ok_or_else(|| {
            self.conn.error(
                COMMAND,
                Kind::Protocol("the backup stream was not read to its end".to_string()),
            )
        })
    }

    /// Reads the end position result set, up to ReadyForQuery.
    async fn read_end(&mut self) -> Result<BackupEnd, Kind> {
        let mut end = None;
        loop {
            match self.conn.read_message().await? {
                Message::RowDescription(_) | Message::CommandComplete(_) => {}
                Message::DataRow(body) => {
                    let row = row_values(&body)?;
                    end = Some(BackupEnd {
                        end_lsn: required(&row, 0, "recptr")?,
                        timeline: timeline(&row, 1)?,
                    });
                }
                Message::ReadyForQuery(_) => break,
                _ => return Err(protocol("unexpected message after the backup data")),
            }
        }
        self.conn.mode = Mode::Command;
        end.ok_or_else(|| protocol("no end position after the backup data"))
    }
}

fn protocol(what: &str) -> Kind {
    Kind::Protocol(what.to_string())
}

/// A field that may be NULL, parsed from its text.
fn optional<T: FromStr>(row: &[Option<Bytes>], i: usize, name: &str) -> Result<Option<T>, Kind> {
    match row.get(i) {
        Some(Some(value)) => {
            let text = std::str::from_utf8(value)
                .map_err(|_| protocol(&format!("field {name} is not UTF-8")))?;
            text.parse()
                .map(Some)
                .map_err(|_| protocol(&format!("field {name} is {text:?}")))
        }
        Some(None) => Ok(None),
        None => Err(protocol(&format!("field {name} is missing"))),
    }
}

/// A field that must not be NULL.
fn required<T: FromStr>(row: &[Option<Bytes>], i: usize, name: &str) -> Result<T, Kind> {
    optional(row, i, name)?.ok_or_else(|| protocol(&format!("field {name} is NULL")))
}

fn timeline(row: &[Option<Bytes>], i: usize) -> Result<TimelineId, Kind> {
    TimelineId::new(required(row, i, "tli")?).ok_or_else(|| protocol("field tli is \"0\""))
}
