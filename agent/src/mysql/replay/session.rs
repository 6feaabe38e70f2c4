//! The statements a MariaDB replica's IO thread runs on its primary before it asks for the
//! binlog, and this primary's answers (pure: no I/O, no clock of its own).
//!
//! MariaDB 10.11's `get_master_version_and_clock` (`sql/slave.cc`) runs, in order:
//! `SELECT UNIX_TIMESTAMP()` (the clock difference for `Seconds_Behind_Master`),
//! `SHOW VARIABLES LIKE 'SERVER_ID'` (refused when equal to its own),
//! `SET @master_heartbeat_period= <ns>`, `SET @master_binlog_checksum=
//! @@global.binlog_checksum` and `SELECT @master_binlog_checksum` (the checksum of the fake
//! ROTATE), `SET @mariadb_slave_capability=4`, and then, with `MASTER_USE_GTID=no`,
//! `SELECT binlog_gtid_pos('<file>',<pos>)`, whose NULL it ignores; with GTIDs it reads
//! `@@GLOBAL.gtid_domain_id` and sets `@slave_connect_state` and friends. A replica with
//! semi-sync on also asks for `@@global.rpl_semi_sync_master_enabled`. Every `SET` of a
//! user variable is remembered and answers a later `SELECT @name`; other `SET`s succeed;
//! unknown system variables get the server's own ERR 1193, other statements ERR 1235.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use logship_protocol::mysql::{ChecksumAlg, ColumnDefinition, ErrPacket, ResultSet};

/// `ER_UNKNOWN_SYSTEM_VARIABLE`.
const ER_UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
/// `ER_NOT_SUPPORTED_YET`.
const ER_NOT_SUPPORTED_YET: u16 = 1235;
/// `MYSQL_TYPE_VAR_STRING`.
const VAR_STRING: u8 = 253;
/// `utf8mb3_general_ci`, what MariaDB labels expression results with.
const UTF8_GENERAL_CI: u16 = 33;
/// `SERVER_STATUS_AUTOCOMMIT`.
pub const STATUS_AUTOCOMMIT: u16 = 0x0002;

/// What this primary says about itself: the original server's identity, as archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryFacts {
    /// The original server's `server_id`.
    pub server_id: u32,
    /// Its `gtid_domain_id`.
    pub domain_id: u32,
    /// Its version, as its FORMAT_DESCRIPTION names it (`10.11.6-MariaDB-log`).
    pub version: String,
    /// The checksum of its binlog events (`@@global.binlog_checksum`).
    pub checksum: ChecksumAlg,
}

/// The answer to one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// OK.
    Ok,
    /// A result set.
    Rows(ResultSet),
    /// An error.
    Err(ErrPacket),
}

/// The user variables a replica has set on this connection.
#[derive(Debug, Clone, Default)]
pub struct ReplicaSession {
    vars: HashMap<String, Option<String>>,
}

impl ReplicaSession {
    /// Answers `sql`; `now` is the Unix time in seconds.
    pub fn answer(&mut self, sql: &str, facts: &PrimaryFacts, now: i64) -> Reply {
        let sql = sql.trim().trim_end_matches(';').trim();
        let upper = sql.to_ascii_uppercase();
        if let Some(assignments) = strip_keyword(sql, &upper, "SET") {
            for assignment in split_top_level(assignments) {
                self.set(assignment, facts);
            }
            return Reply::Ok;
        }
        if let Some(items) = strip_keyword(sql, &upper, "SELECT") {
            let mut columns = Vec::new();
            let mut row = Vec::new();
            for item in split_top_level(items) {
                match self.value(item, facts, now) {
                    Ok(value) => {
                        columns.push(ColumnDefinition::expression(
                            item,
                            VAR_STRING,
                            UTF8_GENERAL_CI,
                        ));
                        row.push(value.map(Bytes::from));
                    }
                    Err(err) => return Reply::Err(err),
                }
            }
            return Reply::Rows(ResultSet {
                columns,
                rows: vec![row],
                status: STATUS_AUTOCOMMIT,
            });
        }
        if let Some(pattern) = upper.strip_prefix("SHOW VARIABLES LIKE ") {
            let name = pattern
                .trim()
                .trim_matches(['\'', '"'])
                .to_ascii_lowercase();
            let rows = system_variable(&name, facts)
                .map(|value| vec![Some(Bytes::from(name.clone())), Some(Bytes::from(value))])
                .into_iter()
                .collect();
            return Reply::Rows(ResultSet {
                columns: vec![
                    ColumnDefinition::expression("Variable_name", VAR_STRING, UTF8_GENERAL_CI),
                    ColumnDefinition::expression("Value", VAR_STRING, UTF8_GENERAL_CI),
                ],
                rows,
                status: STATUS_AUTOCOMMIT,
            });
        }
        Reply::Err(not_supported(sql))
    }

    /// The heartbeat period the replica asked for (`@master_heartbeat_period`, in ns).
    pub fn heartbeat_period(&self) -> Option<Duration> {
        let ns: u64 = self.user_var("master_heartbeat_period")?.parse().ok()?;
        (ns > 0).then(|| Duration::from_nanos(ns))
    }

    /// The checksum the replica said it handles (`@master_binlog_checksum`), if it said.
    pub fn checksum(&self) -> Option<ChecksumAlg> {
        match self
            .user_var("master_binlog_checksum")?
            .to_ascii_uppercase()
            .as_str()
        {
            "CRC32" => Some(ChecksumAlg::Crc32),
            "NONE" => Some(ChecksumAlg::Off),
            _ => None,
        }
    }

    /// `@mariadb_slave_capability`: 0 when the replica did not set it (not MariaDB).
    pub fn capability(&self) -> u32 {
        self.user_var("mariadb_slave_capability")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn user_var(&self, name: &str) -> Option<&str> {
        self.vars.get(name)?.as_deref()
    }

    /// Runs one `name = value` of a SET; only user variables are kept.
    fn set(&mut self, assignment: &str, facts: &PrimaryFacts) {
        let Some((name, value)) = assignment.split_once('=') else {
            return;
        };
        let name = name.trim().trim_start_matches(':');
        let Some(var) = name.strip_prefix('@').filter(|n| !n.starts_with('@')) else {
            return;
        };
        let value = match self.value(value.trim(), facts, 0) {
            Ok(value) => value,
            Err(_) => Some(value.trim().to_owned()),
        };
        self.vars.insert(var.to_ascii_lowercase(), value);
    }

    /// The value of one expression of a SELECT (or the right side of a SET).
    fn value(
        &self,
        item: &str,
        facts: &PrimaryFacts,
        now: i64,
    ) -> Result<Option<String>, ErrPacket> {
        let lower = item.to_ascii_lowercase();
        if let Some(var) = lower.strip_prefix("@@") {
            let name = var
                .strip_prefix("global.")
                .or_else(|| var.strip_prefix("session."))
                .unwrap_or(var);
            return system_variable(name, facts)
                .map(Some)
                .ok_or_else(|| ErrPacket {
                    code: ER_UNKNOWN_SYSTEM_VARIABLE,
                    sql_state: Some("HY000".into()),
                    message: format!("Unknown system variable '{name}'"),
                });
        }
        if let Some(var) = lower.strip_prefix('@') {
            return Ok(self.vars.get(var).cloned().flatten());
        }
        if let Some(text) = quoted(item) {
            return Ok(Some(text.to_owned()));
        }
        if lower == "null" {
            return Ok(None);
        }
        if !lower.is_empty() && lower.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(Some(lower));
        }
        match lower.split('(').next().map(str::trim) {
            Some("unix_timestamp") if lower.ends_with("()") => Ok(Some(now.to_string())),
            Some("version") if lower.ends_with("()") => Ok(Some(facts.version.clone())),
            // The GTID position of a file position: unknown here, and a NULL tells the
            // replica just that (it keeps its own gtid_slave_pos).
            Some("binlog_gtid_pos") => Ok(None),
            _ => Err(not_supported(item)),
        }
    }
}

/// The system variables this primary knows, by lower-case name.
fn system_variable(name: &str, facts: &PrimaryFacts) -> Option<String> {
    Some(match name {
        "server_id" => facts.server_id.to_string(),
        "gtid_domain_id" => facts.domain_id.to_string(),
        "version" => facts.version.clone(),
        "binlog_checksum" => match facts.checksum {
            ChecksumAlg::Crc32 => "CRC32".into(),
            ChecksumAlg::Off => "NONE".into(),
        },
        "log_bin" => "1".into(),
        // Semi-sync is off here: the replica then replicates asynchronously.
        "rpl_semi_sync_master_enabled" => "0".into(),
        _ => return None,
    })
}

fn not_supported(what: &str) -> ErrPacket {
    ErrPacket {
        code: ER_NOT_SUPPORTED_YET,
        sql_state: Some("42000".into()),
        message: format!("This primary (logship replaying an archive) does not support '{what}'"),
    }
}

/// `sql` without its leading keyword and the blank after it, if it starts with `keyword`.
fn strip_keyword<'a>(sql: &'a str, upper: &str, keyword: &str) -> Option<&'a str> {
    let rest = upper.strip_prefix(keyword)?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    sql.get(keyword.len()..).map(str::trim)
}

/// The text inside matching single or double quotes.
fn quoted(item: &str) -> Option<&str> {
    ['\'', '"']
        .into_iter()
        .find_map(|q| item.strip_prefix(q)?.strip_suffix(q))
}

/// Splits at commas outside quotes and parentheses.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None, 0);
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(text.get(start..i).unwrap_or_default().trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text.get(start..).unwrap_or_default().trim());
    parts.retain(|p| !p.is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> PrimaryFacts {
        PrimaryFacts {
            server_id: 1,
            domain_id: 0,
            version: "10.11.6-MariaDB-log".into(),
            checksum: ChecksumAlg::Crc32,
        }
    }

    fn single(reply: Reply) -> Option<String> {
        match reply {
            Reply::Rows(rs) => {
                assert_eq!(rs.rows.len(), 1);
                rs.rows[0][0]
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            }
            other => panic!("{other:?}"),
        }
    }

    /// The statements of a MariaDB 10.11 IO thread with MASTER_USE_GTID=no, in order.
    #[test]
    fn answers_the_io_thread_of_mariadb_10_11() {
        let f = facts();
        let mut s = ReplicaSession::default();
        assert_eq!(
            single(s.answer("SELECT UNIX_TIMESTAMP()", &f, 1_700_000_000)),
            Some("1700000000".into())
        );
        match s.answer("SHOW VARIABLES LIKE 'SERVER_ID'", &f, 0) {
            Reply::Rows(rs) => {
                assert_eq!(rs.columns[1].name, "Value");
                assert_eq!(rs.rows[0][1].as_deref(), Some(&b"1"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            s.answer("SET @master_heartbeat_period= 30000000000", &f, 0),
            Reply::Ok
        );
        assert_eq!(s.heartbeat_period(), Some(Duration::from_secs(30)));
        assert_eq!(s.checksum(), None);
        assert_eq!(
            s.answer(
                "SET @master_binlog_checksum= @@global.binlog_checksum",
                &f,
                0
            ),
            Reply::Ok
        );
        assert_eq!(s.checksum(), Some(ChecksumAlg::Crc32));
        assert_eq!(
            single(s.answer("SELECT @master_binlog_checksum", &f, 0)),
            Some("CRC32".into())
        );
        assert_eq!(s.capability(), 0);
        assert_eq!(
            s.answer("SET @mariadb_slave_capability=4", &f, 0),
            Reply::Ok
        );
        assert_eq!(s.capability(), 4);
        assert_eq!(
            single(s.answer("SELECT binlog_gtid_pos('binlog.000001',4)", &f, 0)),
            None
        );
        assert_eq!(
            single(s.answer("SELECT @@GLOBAL.gtid_domain_id", &f, 0)),
            Some("0".into())
        );
        assert_eq!(
            s.answer(
                "SET @slave_connect_state='0-1-5', @slave_gtid_strict_mode=0",
                &f,
                0
            ),
            Reply::Ok
        );
        assert_eq!(
            single(s.answer("SELECT @slave_connect_state", &f, 0)),
            Some("0-1-5".into())
        );
        assert_eq!(s.answer("SET skip_replication=1", &f, 0), Reply::Ok);
    }

    #[test]
    fn refuses_what_it_does_not_know_as_the_server_would() {
        let f = facts();
        let mut s = ReplicaSession::default();
        match s.answer("SELECT @@global.no_such_thing", &f, 0) {
            Reply::Err(err) => {
                assert_eq!(err.code, 1193);
                assert_eq!(err.message, "Unknown system variable 'no_such_thing'");
            }
            other => panic!("{other:?}"),
        }
        match s.answer("DROP TABLE t", &f, 0) {
            Reply::Err(err) => assert_eq!(err.code, 1235),
            other => panic!("{other:?}"),
        }
        match s.answer("SELECT NOW()", &f, 0) {
            Reply::Err(err) => assert_eq!(err.code, 1235),
            other => panic!("{other:?}"),
        }
        assert_eq!(single(s.answer("SELECT @never_set", &f, 0)), None);
        match s.answer("SHOW VARIABLES LIKE 'nothing'", &f, 0) {
            Reply::Rows(rs) => assert!(rs.rows.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn several_items_make_several_columns() {
        let f = facts();
        let mut s = ReplicaSession::default();
        match s.answer("SELECT @@server_id, VERSION(), 'a,b'", &f, 0) {
            Reply::Rows(rs) => {
                let names: Vec<_> = rs.columns.iter().map(|c| c.name.as_str()).collect();
                assert_eq!(names, ["@@server_id", "VERSION()", "'a,b'"]);
                assert_eq!(rs.rows[0][1].as_deref(), Some(&b"10.11.6-MariaDB-log"[..]));
                assert_eq!(rs.rows[0][2].as_deref(), Some(&b"a,b"[..]));
            }
            other => panic!("{other:?}"),
        }
    }
}
