//! `ReplicationConnection`: connecting (with errors explained), and the
//! replication commands that answer with a result set.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use fallible_iterator::FallibleIterator as _;
use logship_protocol::pg::{Lsn, TimelineId, WalSegSize};
use postgres_protocol::message::backend::{DataRowBody, Message};
use postgres_protocol::message::frontend;

use super::auth;
use super::error::{DbError, During, Explain, Kind, PgError};
use super::options::ConnectOptions;
use super::streaming::Mode;
use super::transport;
use super::wire::{Backend, Wire};

/// How long connecting (resolve, TCP, TLS, authentication) may take, as libpq's `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLSTATE `duplicate_object`: the slot exists already.
const DUPLICATE_OBJECT: &str = "42710";

/// SQLSTATE `feature_not_supported`: READ_REPLICATION_SLOT on a logical slot.
const FEATURE_NOT_SUPPORTED: &str = "0A000";

/// What IDENTIFY_SYSTEM reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SystemInfo {
    /// The cluster's unique system identifier.
    pub system_id: u64,
    /// The server's current timeline.
    pub timeline: TimelineId,
    /// The server's current WAL flush position.
    pub xlogpos: Lsn,
}

/// What READ_REPLICATION_SLOT reports about a physical slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotInfo {
    /// The oldest WAL the slot holds back, if it has reserved any.
    pub restart_lsn: Option<Lsn>,
    /// The timeline of `restart_lsn`.
    pub restart_tli: Option<TimelineId>,
}

/// A connection speaking PostgreSQL's replication protocol (or plain SQL, for diagnostics).
pub struct ReplicationConnection {
    pub(super) wire: Wire,
    pub(super) addr: String,
    pub(super) mode: Mode,
    server_version: String,
}

/// One result row: text values, `None` for NULL.
type Row = Vec<Option<Bytes>>;

impl ReplicationConnection {
    /// Opens a physical replication (walsender) session.
    pub async fn connect(opts: &ConnectOptions) -> Result<ReplicationConnection, PgError> {
        match open(opts, true).await {
            Ok(conn) => Ok(conn),
            Err(Failure { kind, local_ip }) => {
                let kind = explain(kind, opts, local_ip, true).await;
                Err(PgError::new(connect_during(opts), kind))
            }
        }
    }

    /// Opens an ordinary SQL session, for diagnostics such as `SHOW wal_level`.
    pub async fn connect_sql(opts: &ConnectOptions) -> Result<ReplicationConnection, PgError> {
        match open(opts, false).await {
            Ok(conn) => Ok(conn),
            Err(Failure { kind, local_ip }) => {
                let kind = explain(kind, opts, local_ip, false).await;
                Err(PgError::new(connect_during(opts), kind))
            }
        }
    }

    /// The server's version, from its `server_version` parameter.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// Runs one SQL (or replication) command; rows of text values, `None` for NULL.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, PgError> {
        // Only the command word: the rest could hold secrets (ALTER ROLE … PASSWORD).
        let label = sql
            .split_whitespace()
            .next()
            .unwrap_or("query")
            .to_uppercase();
        let rows = self.query(sql, &label).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
                    .collect()
            })
            .collect())
    }

    /// IDENTIFY_SYSTEM: the system identifier, current timeline and WAL position.
    pub async fn identify_system(&mut self) -> Result<SystemInfo, PgError> {
        const CMD: &str = "IDENTIFY_SYSTEM";
        let rows = self.query(CMD, CMD).await?;
        let row = self.single_row(&rows, CMD)?;
        Ok(SystemInfo {
            system_id: self.parse(row, 0, CMD, "systemid")?,
            timeline: self.timeline(row, 1, CMD, "timeline")?,
            xlogpos: self.parse(row, 2, CMD, "xlogpos")?,
        })
    }

    /// `SHOW name`, which walsender sessions also accept (PostgreSQL 10+).
    pub async fn show(&mut self, name: &str) -> Result<String, PgError> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(self.error(
                "SHOW",
                Kind::InvalidName {
                    what: "setting name",
                    name: name.to_string(),
                },
            ));
        }
        let label = format!("SHOW {name}");
        let rows = self.query(&label, &label).await?;
        let row = self.single_row(&rows, &label)?;
        Ok(self.text(row, 0, &label, name)?.to_string())
    }

    /// The cluster's WAL segment size (`SHOW wal_segment_size`, e.g. `16MB`).
    pub async fn wal_segment_size(&mut self) -> Result<WalSegSize, PgError> {
        let text = self.show("wal_segment_size").await?;
        parse_size(&text)
            .and_then(|bytes| WalSegSize::new(bytes).ok())
            .ok_or_else(|| {
                self.error(
                    "SHOW wal_segment_size",
                    Kind::Protocol(format!("wal_segment_size \"{text}\" is not a valid size")),
                )
            })
    }

    /// READ_REPLICATION_SLOT: `None` if the slot does not exist; an error for a logical slot.
    pub async fn read_replication_slot(&mut self, slot: &str) -> Result<Option<SlotInfo>, PgError> {
        let label = format!("READ_REPLICATION_SLOT \"{slot}\"");
        self.check_slot_name(slot, &label)?;
        let logical = || Kind::LogicalSlot {
            slot: slot.to_string(),
        };
        let rows = match self.query(&label, &label).await {
            Ok(rows) => rows,
            // PostgreSQL refuses logical slots itself (feature_not_supported).
            Err(e) if e.code() == Some(FEATURE_NOT_SUPPORTED) => {
                return Err(self.error(&label, logical()));
            }
            Err(e) => return Err(e),
        };
        let row = self.single_row(&rows, &label)?;
        match row.first() {
            Some(Some(kind)) if kind.as_ref() == b"logical" => Err(self.error(&label, logical())),
            Some(Some(_)) => Ok(Some(SlotInfo {
                restart_lsn: self.optional(row, 1, &label, "restart_lsn")?,
                restart_tli: match self.optional::<u32>(row, 2, &label, "restart_tli")? {
                    Some(raw) => Some(
                        TimelineId::new(raw)
                            .ok_or_else(|| self.bad_field(&label, "restart_tli", "0"))?,
                    ),
                    None => None,
                },
            })),
            _ => Ok(None),
        }
    }

    /// CREATE_REPLICATION_SLOT … PHYSICAL RESERVE_WAL; a slot that already exists is fine.
    pub async fn create_physical_slot(&mut self, slot: &str) -> Result<(), PgError> {
        let label = format!("CREATE_REPLICATION_SLOT \"{slot}\"");
        self.check_slot_name(slot, &label)?;
        let sql = format!("CREATE_REPLICATION_SLOT \"{slot}\" PHYSICAL RESERVE_WAL");
        match self.query(&sql, &label).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(DUPLICATE_OBJECT) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// TIMELINE_HISTORY: the history file's name and content.
    pub async fn timeline_history(&mut self, tli: TimelineId) -> Result<(String, Bytes), PgError> {
        let label = format!("TIMELINE_HISTORY {tli}");
        let rows = self.query(&label, &label).await?;
        let row = self.single_row(&rows, &label)?;
        let name = self.text(row, 0, &label, "filename")?.to_string();
        let content = match row.get(1) {
            Some(Some(content)) => content.clone(),
            _ => return Err(self.bad_field(&label, "content", "NULL")),
        };
        Ok((name, content))
    }

    /// Ends the session politely (Terminate).
    pub async fn close(self) {
        self.wire.terminate().await;
    }

    /// Sends a simple Query and collects its rows; an ErrorResponse becomes the error
    /// once the server is ready again.
    async fn query(&mut self, sql: &str, label: &str) -> Result<Vec<Row>, PgError> {
        if !matches!(self.mode, Mode::Command) {
            return Err(self.error(
                label,
                Kind::Protocol("a command was sent while the connection is streaming".to_string()),
            ));
        }
        let mut rows = Vec::new();
        let mut failure = None;
        let result = async {
            frontend::query(sql, self.wire.out())
                .map_err(|e| Kind::Protocol(format!("cannot encode the query: {e}")))?;
            self.wire.flush().await?;
            loop {
                match self.wire.read().await? {
                    Backend::Message(Message::ReadyForQuery(_)) => return Ok(()),
                    Backend::Message(Message::DataRow(body)) => rows.push(row_values(&body)?),
                    Backend::Message(Message::ErrorResponse(body)) => {
                        let db = DbError::parse(&mut body.fields())
                            .map_err(|e| Kind::Protocol(e.to_string()))?;
                        failure = Some(Kind::Server {
                            db: Box::new(db),
                            explain: None,
                        });
                    }
                    Backend::Message(Message::NoticeResponse(body)) => auth::log_notice(&body),
                    Backend::Message(
                        Message::RowDescription(_)
                        | Message::CommandComplete(_)
                        | Message::EmptyQueryResponse
                        | Message::ParameterStatus(_),
                    ) => {}
                    _ => return Err(Kind::Protocol(format!("unexpected reply to {label}"))),
                }
            }
        }
        .await;
        // A FATAL error closes the connection right after the ErrorResponse: report the error.
        match (failure, result) {
            (Some(kind), _) | (None, Err(kind)) => Err(self.error(label, kind)),
            (None, Ok(())) => Ok(rows),
        }
    }

    pub(super) fn error(&self, command: &str, kind: Kind) -> PgError {
        PgError::new(
            During::Command {
                addr: self.addr.clone(),
                command: command.to_string(),
            },
            kind,
        )
    }

    pub(super) fn check_slot_name(&self, slot: &str, label: &str) -> Result<(), PgError> {
        // PostgreSQL's own rule (ReplicationSlotValidateName), so quoting never matters.
        let valid = !slot.is_empty()
            && slot.len() <= 63
            && slot
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid {
            Ok(())
        } else {
            Err(self.error(
                label,
                Kind::InvalidName {
                    what: "replication slot name",
                    name: slot.to_string(),
                },
            ))
        }
    }

    fn single_row<'a>(&self, rows: &'a [Row], label: &str) -> Result<&'a Row, PgError> {
        match rows {
            [row] => Ok(row),
            _ => Err(self.error(
                label,
                Kind::Protocol(format!("{} rows where one was expected", rows.len())),
            )),
        }
    }

    fn text<'a>(
        &self,
        row: &'a Row,
        i: usize,
        label: &str,
        field: &str,
    ) -> Result<&'a str, PgError> {
        match row.get(i) {
            Some(Some(v)) => {
                std::str::from_utf8(v).map_err(|_| self.bad_field(label, field, "not UTF-8"))
            }
            _ => Err(self.bad_field(label, field, "NULL")),
        }
    }

    fn parse<T: FromStr>(
        &self,
        row: &Row,
        i: usize,
        label: &str,
        field: &str,
    ) -> Result<T, PgError> {
        let text = self.text(row, i, label, field)?;
        text.parse().map_err(|_| self.bad_field(label, field, text))
    }

    fn optional<T: FromStr>(
        &self,
        row: &Row,
        i: usize,
        label: &str,
        field: &str,
    ) -> Result<Option<T>, PgError> {
        match row.get(i) {
            Some(Some(_)) => self.parse(row, i, label, field).map(Some),
            _ => Ok(None),
        }
    }

    fn timeline(
        &self,
        row: &Row,
        i: usize,
        label: &str,
        field: &str,
    ) -> Result<TimelineId, PgError> {
        let raw: u32 = self.parse(row, i, label, field)?;
        TimelineId::new(raw).ok_or_else(|| self.bad_field(label, field, "0"))
    }

    fn bad_field(&self, label: &str, field: &str, value: &str) -> PgError {
        self.error(label, Kind::Protocol(format!("field {field} is {value:?}")))
    }
}

/// A failed connection attempt, with what is needed to explain it.
struct Failure {
    kind: Kind,
    local_ip: Option<IpAddr>,
}

/// Connects without explaining failures (so diagnosing one cannot recurse).
async fn open(opts: &ConnectOptions, replication: bool) -> Result<ReplicationConnection, Failure> {
    let attempt = async {
        let opened = transport::open(opts).await.map_err(|kind| Failure {
            kind,
            local_ip: None,
        })?;
        let local_ip = opened.local_ip;
        let mut wire = Wire::new(opened.transport);
        let startup = auth::startup(&mut wire, opts, replication)
            .await
            .map_err(|kind| Failure { kind, local_ip })?;
        Ok(ReplicationConnection {
            wire,
            addr: opts.addr(),
            mode: Mode::Command,
            server_version: startup.server_version,
        })
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(result) => result,
        Err(_) => Err(Failure {
            kind: Kind::ConnectTimeout,
            local_ip: None,
        }),
    }
}

fn connect_during(opts: &ConnectOptions) -> During {
    During::Connect { addr: opts.addr() }
}

/// Replaces a known server error with its explanation and fix.
async fn explain(
    kind: Kind,
    opts: &ConnectOptions,
    local_ip: Option<IpAddr>,
    replication: bool,
) -> Kind {
    let Kind::Server { db, explain: None } = kind else {
        return kind;
    };
    let user = opts.user().to_string();
    let explain = match db.code.as_str() {
        "28P01" => Some(Explain::PasswordFailed { user }),
        "42501" if db.message.contains("replication role") => {
            Some(Explain::NoReplicationRole { user })
        }
        "28000" if db.message.starts_with("no pg_hba.conf entry") => {
            let database = if replication {
                "replication"
            } else {
                opts.dbname()
            };
            let address = match local_ip {
                Some(IpAddr::V4(ip)) => format!("{ip}/32"),
                Some(IpAddr::V6(ip)) => format!("{ip}/128"),
                None => "ADDRESS".to_string(),
            };
            Some(Explain::NoHbaEntry {
                message: db.message.clone(),
                line: format!("host {database} {user} {address} scram-sha-256"),
            })
        }
        "53300" if db.message.contains("max_wal_senders") => {
            Some(diagnose_wal_senders(opts, &db).await)
        }
        _ => None,
    };
    Kind::Server { db, explain }
}

/// Walsender slots ran out: tell wal_level=minimal, max_wal_senders=0 and "all in use" apart.
async fn diagnose_wal_senders(opts: &ConnectOptions, db: &DbError) -> Explain {
    let from_server = async {
        let mut conn = open(opts, false).await.ok()?;
        let wal_level = conn.show("wal_level").await.ok()?;
        let max = conn.show("max_wal_senders").await.ok()?;
        conn.close().await;
        Some((wal_level, max))
    };
    // Without a SQL session (e.g. pg_hba.conf allows only replication), the message says how many.
    let (wal_level, max) = match from_server.await {
        Some(found) => found,
        None => {
            let max = db
                .message
                .rsplit_once("(currently ")
                .and_then(|(_, rest)| rest.strip_suffix(')'))
                .unwrap_or("?")
                .to_string();
            (String::new(), max)
        }
    };
    if wal_level == "minimal" {
        Explain::WalLevelMinimal
    } else if max == "0" {
        Explain::NoWalSenders
    } else {
        Explain::WalSendersInUse { max }
    }
}

/// A DataRow's values, sharing the message's buffer.
pub(super) fn row_values(body: &DataRowBody) -> Result<Row, Kind> {
    let buffer = body.buffer_bytes();
    let mut ranges = body.ranges();
    let mut values = Vec::new();
    while let Some(range) = ranges.next().map_err(|e| Kind::Protocol(e.to_string()))? {
        values.push(match range {
            Some(range) if range.end <= buffer.len() && range.start <= range.end => {
                Some(buffer.slice(range))
            }
            Some(_) => {
                return Err(Kind::Protocol(
                    "a DataRow field overruns the message".into(),
                ));
            }
            None => None,
        });
    }
    Ok(values)
}

/// `16MB`, `1GB`, `512kB` or plain bytes, as SHOW prints memory sizes.
fn parse_size(text: &str) -> Option<u64> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at_checked(digits)?;
    let number: u64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_sizes() {
        assert_eq!(parse_size("16MB"), Some(16 << 20));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("512kB"), Some(512 << 10));
        assert_eq!(parse_size("8192"), Some(8192));
        assert_eq!(parse_size("16 MB"), Some(16 << 20));
        assert_eq!(parse_size("MB"), None);
        assert_eq!(parse_size("16XB"), None);
    }
}
