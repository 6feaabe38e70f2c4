//! `MysqlConnection`: connecting and logging in (with errors explained), queries on the
//! same socket, and the server checks a binlog archiver needs ([`ServerInfo`]).

use std::collections::HashMap;
use std::time::Duration;

use bytes::BytesMut;
use logship_protocol::mysql::{
    AuthError, AuthStep, BinlogFileName, BinlogPos, CapabilityFlags, ChecksumAlg, ColumnDefinition,
    Command, ErrPacket, Greeting, HandshakeV10, Login, LoginOptions, QueryError, QueryReader,
    QueryResponse, Row,
};

use super::error::{
    During, ER_ACCESS_DENIED_ERROR, ER_HOST_NOT_PRIVILEGED, ER_PARSE_ERROR,
    ER_PLUGIN_IS_NOT_LOADED, Kind, MysqlError,
};
use super::options::ConnectOptions;
use super::transport::{self, Wire};
use crate::tls::SslMode;
use crate::tls::Transport;

/// How long connecting (resolve, TCP, TLS, login) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest payload accepted before the server's `max_allowed_packet` is known: a binlog
/// event may be 1 GiB, plus the dump packet's status byte and semi-sync header.
pub(crate) const DEFAULT_MAX_PAYLOAD: usize = (1 << 30) + 64 * 1024;

/// What the server is and how its binlog is set up, read right after login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The version, such as `10.11.19-MariaDB-0+deb12u1` (without MariaDB's `5.5.5-` prefix).
    pub version: String,
    /// Whether the server is MariaDB rather than MySQL.
    pub is_mariadb: bool,
    /// `@@server_id`.
    pub server_id: u32,
    /// `@@server_uuid` (MySQL only).
    pub server_uuid: Option<String>,
    /// `@@gtid_domain_id` (MariaDB only).
    pub gtid_domain_id: Option<u32>,
    /// `@@global.binlog_format`: `ROW`, `MIXED` or `STATEMENT`.
    pub binlog_format: String,
    /// `@@global.binlog_checksum`.
    pub binlog_checksum: ChecksumAlg,
    /// `@@global.gtid_binlog_pos` (MariaDB) or `@@global.gtid_executed` (MySQL), as text.
    pub gtid_position: String,
    /// `@@global.max_allowed_packet`.
    pub max_allowed_packet: u64,
    /// The end of the binlog now (`SHOW MASTER STATUS`).
    pub current: BinlogPos,
    /// The binlog files the server has (`SHOW BINARY LOGS`): name and size, oldest first.
    pub binlogs: Vec<(BinlogFileName, u64)>,
    /// The server's clock minus this host's, measured at login (`@@timestamp`).
    pub clock_offset: jiff::SignedDuration,
    /// Things that work but should be fixed, one line each with the fix (the caller logs them).
    pub warnings: Vec<String>,
}

/// One login session: queries, the server checks, and then (consumed) the binlog dump.
pub struct MysqlConnection {
    pub(super) session: Session,
    info: ServerInfo,
}

/// The logged-in socket and what the greeting and login said.
pub(super) struct Session {
    pub(super) wire: Wire,
    pub(super) addr: String,
    capabilities: CapabilityFlags,
    version: String,
    pub(super) is_mariadb: bool,
    tls: bool,
    connection_id: u32,
}

impl MysqlConnection {
    /// Connects, logs in, and reads and checks [`ServerInfo`]: fails with the fix when the
    /// binlog is off, its checksum unknown, or the user lacks a replication privilege.
    pub async fn connect(opts: &ConnectOptions) -> Result<MysqlConnection, MysqlError> {
        let mut session = Session::open(opts, false).await?;
        let info = session.read_server_info().await?;
        let max = usize::try_from(info.max_allowed_packet)
            .unwrap_or(usize::MAX)
            .saturating_add(64 * 1024);
        session.wire.set_max_payload(max);
        Ok(MysqlConnection { session, info })
    }

    /// What the server reported right after login (or at the last [`refresh_info`](MysqlConnection::refresh_info)).
    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    /// Re-reads and checks [`ServerInfo`]: the position and binlog list change as the server writes.
    pub async fn refresh_info(&mut self) -> Result<&ServerInfo, MysqlError> {
        self.info = self.session.read_server_info().await?;
        Ok(&self.info)
    }

    /// Whether the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.session.tls
    }

    /// The server's id for this session (as `KILL` and `SHOW PROCESSLIST` name it).
    pub fn connection_id(&self) -> u32 {
        self.session.connection_id
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> &str {
        &self.session.addr
    }

    /// Runs one statement (COM_QUERY); the rows as text, `None` for SQL NULL.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, MysqlError> {
        self.session.query(sql).await
    }

    /// Runs one statement; each row as a map from the lower-case column name to its text
    /// (SQL NULLs left out). For replies read by name, such as `SHOW SLAVE STATUS`.
    pub async fn query_named(
        &mut self,
        sql: &str,
    ) -> Result<Vec<HashMap<String, String>>, MysqlError> {
        self.session.query_rows_named(sql).await
    }

    /// Ends the session politely (COM_QUIT).
    pub async fn close(self) {
        self.session.close().await;
    }
}

impl Session {
    /// Connects and logs in; with `local_files`, the session offers `LOAD DATA LOCAL`.
    pub(super) async fn open(
        opts: &ConnectOptions,
        local_files: bool,
    ) -> Result<Session, MysqlError> {
        let addr = opts.addr();
        let (wire, greeting, capabilities, tls) =
            match tokio::time::timeout(CONNECT_TIMEOUT, login(opts, local_files)).await {
                Ok(Ok(opened)) => opened,
                Ok(Err(kind)) => return Err(MysqlError::new(During::Connect { addr }, kind)),
                Err(_) => {
                    return Err(MysqlError::new(
                        During::Connect { addr },
                        Kind::ConnectTimeout,
                    ));
                }
            };
        Ok(Session {
            wire,
            addr,
            capabilities,
            version: greeting.version().to_string(),
            is_mariadb: greeting.is_mariadb(),
            tls,
            connection_id: greeting.connection_id,
        })
    }

    /// The capabilities the session runs with.
    pub(super) fn capabilities(&self) -> CapabilityFlags {
        self.capabilities
    }

    /// Runs one statement (COM_QUERY); the rows as text, `None` for SQL NULL.
    pub(super) async fn query(
        &mut self,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, MysqlError> {
        // Only the command words: the rest could hold secrets (CREATE USER … IDENTIFIED BY).
        let label = sql
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase();
        let rows = self.query_raw(sql, &label).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
                    .collect()
            })
            .collect())
    }

    /// Reads and checks [`ServerInfo`].
    async fn read_server_info(&mut self) -> Result<ServerInfo, MysqlError> {
        let mut info = ServerInfo {
            version: self.version.clone(),
            is_mariadb: self.is_mariadb,
            server_id: 0,
            server_uuid: None,
            gtid_domain_id: None,
            binlog_format: String::new(),
            binlog_checksum: ChecksumAlg::Crc32,
            gtid_position: String::new(),
            max_allowed_packet: 0,
            current: BinlogPos::new(self.file_name_text("binlog.000001", "")?, 4),
            binlogs: Vec::new(),
            clock_offset: jiff::SignedDuration::ZERO,
            warnings: Vec::new(),
        };
        let label = "SELECT @@server_id";
        let rows = self
            .query_text(
                "SELECT @@server_id, @@log_bin, @@GLOBAL.binlog_format, @@GLOBAL.binlog_checksum, \
                 @@GLOBAL.max_allowed_packet, @@timestamp",
                label,
            )
            .await?;
        let here = jiff::Timestamp::now();
        let row = self.single_row(&rows, label)?;
        info.server_id = self.parse(row, 0, label, "server_id")?;
        let log_bin = self.text(row, 1, label, "log_bin")?;
        if !matches!(log_bin, "1" | "ON") {
            return Err(self.check_error(Kind::BinlogOff));
        }
        info.binlog_format = self.text(row, 2, label, "binlog_format")?.to_string();
        if !info.binlog_format.eq_ignore_ascii_case("ROW") {
            info.warnings.push(format!(
                "binlog_format is {}, not ROW: the archive is complete, but statement events are \
                 harder to inspect and may replay differently (SET GLOBAL binlog_format = ROW and \
                 persist it in the server's configuration)",
                info.binlog_format
            ));
        }
        let checksum = self.text(row, 3, label, "binlog_checksum")?;
        info.binlog_checksum = match checksum.to_ascii_uppercase().as_str() {
            "NONE" => ChecksumAlg::Off,
            "CRC32" => ChecksumAlg::Crc32,
            other => return Err(self.check_error(Kind::BadChecksum(other.to_string()))),
        };
        info.max_allowed_packet = self.parse(row, 4, label, "max_allowed_packet")?;
        let server_secs: f64 = self.parse(row, 5, label, "timestamp")?;
        let server_time = jiff::SignedDuration::try_from_secs_f64(server_secs)
            .map_err(|_| self.bad_field(label, "timestamp", &server_secs.to_string()))?;
        info.clock_offset = server_time - here.as_duration();

        if info.is_mariadb {
            let label = "SELECT @@gtid_domain_id";
            let rows = self
                .query_text("SELECT @@gtid_domain_id, @@GLOBAL.gtid_binlog_pos", label)
                .await?;
            let row = self.single_row(&rows, label)?;
            info.gtid_domain_id = Some(self.parse(row, 0, label, "gtid_domain_id")?);
            info.gtid_position = self.text(row, 1, label, "gtid_binlog_pos")?.to_string();
        } else {
            let label = "SELECT @@server_uuid";
            let rows = self
                .query_text("SELECT @@server_uuid, @@GLOBAL.gtid_executed", label)
                .await?;
            let row = self.single_row(&rows, label)?;
            info.server_uuid = Some(self.text(row, 0, label, "server_uuid")?.to_string());
            // MySQL prints long sets over several lines.
            info.gtid_position = self
                .text(row, 1, label, "gtid_executed")?
                .replace(['\n', '\r'], "");
        }

        self.check_privileges(&info).await?;

        info.current = self.current_position(&info).await?;
        let label = "SHOW BINARY LOGS";
        let rows = self.query_text(label, label).await?;
        info.binlogs = Vec::with_capacity(rows.len());
        for row in &rows {
            let name = self.file_name(row, 0, label)?;
            let size = self.parse(row, 1, label, "File_size")?;
            info.binlogs.push((name, size));
        }
        Ok(info)
    }

    /// Ends the session politely (COM_QUIT).
    pub(super) async fn close(mut self) {
        let mut buf = BytesMut::new();
        if Command::Quit.encode(&mut buf).is_ok() {
            self.wire.out().extend_from_slice(&buf);
            let _ = self.wire.flush().await;
        }
        self.wire.shutdown().await;
    }

    /// `SHOW GRANTS`: REPLICATION SLAVE for the dump, and REPLICATION CLIENT (MariaDB 10.5+:
    /// BINLOG MONITOR) for `SHOW BINARY LOGS` and `SHOW MASTER STATUS`.
    async fn check_privileges(&mut self, info: &ServerInfo) -> Result<(), MysqlError> {
        let label = "SELECT CURRENT_USER()";
        let rows = self.query_text("SELECT CURRENT_USER()", label).await?;
        let row = self.single_row(&rows, label)?;
        let current = self.text(row, 0, label, "CURRENT_USER()")?;
        let account = match current.rsplit_once('@') {
            Some((user, host)) => format!("'{user}'@'{host}'"),
            None => format!("'{current}'"),
        };
        let label = "SHOW GRANTS";
        let rows = self.query_text(label, label).await?;
        let grants = Grants::parse(rows.iter().filter_map(|r| r.first()?.as_deref()));
        if !grants.replication_slave {
            return Err(self.check_error(Kind::MissingPrivilege {
                privilege: "REPLICATION SLAVE",
                account,
                needed_for: "reading the binlog (COM_BINLOG_DUMP)",
            }));
        }
        if !grants.binlog_monitor {
            let privilege = if info.is_mariadb && version_at_least(&info.version, (10, 5, 2)) {
                "BINLOG MONITOR"
            } else {
                "REPLICATION CLIENT"
            };
            return Err(self.check_error(Kind::MissingPrivilege {
                privilege,
                account,
                needed_for: "listing the binlogs (SHOW BINARY LOGS)",
            }));
        }
        Ok(())
    }

    /// The end of the binlog: `SHOW MASTER STATUS`, which MySQL 8.4 renamed `SHOW BINARY LOG STATUS`.
    async fn current_position(&mut self, info: &ServerInfo) -> Result<BinlogPos, MysqlError> {
        let renamed = !info.is_mariadb && version_at_least(&info.version, (8, 2, 0));
        let (first, second) = if renamed {
            ("SHOW BINARY LOG STATUS", "SHOW MASTER STATUS")
        } else {
            ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS")
        };
        let (label, rows) = match self.query_text(first, first).await {
            Ok(rows) => (first, rows),
            Err(e) if e.code() == Some(ER_PARSE_ERROR) => {
                (second, self.query_text(second, second).await?)
            }
            Err(e) => return Err(e),
        };
        let Some(row) = rows.first() else {
            return Err(self.check_error(Kind::BinlogOff));
        };
        let file = self.file_name(row, 0, label)?;
        let pos = self.parse(row, 1, label, "Position")?;
        Ok(BinlogPos::new(file, pos))
    }

    /// Sends a COM_QUERY and collects its rows (of the first result); the ERR becomes the error.
    pub(super) async fn query_raw(
        &mut self,
        sql: &str,
        label: &str,
    ) -> Result<Vec<Row>, MysqlError> {
        match self.query_kind(sql).await {
            Ok((_, rows)) => Ok(rows),
            Err(kind) => Err(self.error(label, kind)),
        }
    }

    /// Runs `sql`; each row as a map from the lowercased column name to the text value.
    pub(super) async fn query_rows_named(
        &mut self,
        sql: &str,
    ) -> Result<Vec<HashMap<String, String>>, MysqlError> {
        let (columns, rows) = match self.query_kind(sql).await {
            Ok(result) => result,
            Err(kind) => return Err(self.error(sql, kind)),
        };
        Ok(rows
            .into_iter()
            .map(|row| {
                columns
                    .iter()
                    .zip(row)
                    .filter_map(|(c, v)| {
                        Some((
                            c.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(&v?).into_owned(),
                        ))
                    })
                    .collect()
            })
            .collect())
    }

    /// Sends a command that the server answers with OK or ERR.
    pub(super) async fn command_ok(
        &mut self,
        command: &Command,
        label: &str,
    ) -> Result<(), MysqlError> {
        let result = async {
            let mut buf = BytesMut::new();
            command
                .encode(&mut buf)
                .map_err(|e| Kind::Protocol(e.to_string()))?;
            self.wire.out().extend_from_slice(&buf);
            self.wire.flush().await?;
            let packet = self.wire.read().await?;
            match packet.payload.first() {
                Some(0x00) => Ok(()),
                Some(0xFF) => Err(match ErrPacket::parse(&packet.payload) {
                    Ok(err) => Kind::Server(err),
                    Err(e) => Kind::Protocol(e.to_string()),
                }),
                _ => Err(Kind::Protocol(format!(
                    "the reply to {label} is neither OK nor ERR"
                ))),
            }
        }
        .await;
        result.map_err(|kind| self.error(label, kind))
    }

    /// The server's version (without MariaDB's `5.5.5-` prefix).
    pub(super) fn version(&self) -> &str {
        &self.version
    }

    async fn query_kind(&mut self, sql: &str) -> Result<(Vec<ColumnDefinition>, Vec<Row>), Kind> {
        let mut buf = BytesMut::new();
        Command::Query(sql.to_string())
            .encode(&mut buf)
            .map_err(|e| Kind::Protocol(e.to_string()))?;
        self.wire.out().extend_from_slice(&buf);
        self.wire.flush().await?;
        let mut result = None;
        let mut reader = QueryReader::new(self.capabilities);
        loop {
            let packet = self.wire.read().await?;
            let response = match reader.push(&packet.payload) {
                Ok(Some(response)) => response,
                Ok(None) => continue,
                Err(QueryError::Server(err)) => return Err(Kind::Server(err)),
                Err(e) => return Err(Kind::Protocol(e.to_string())),
            };
            let status = match response {
                QueryResponse::Ok(ok) => ok.status,
                QueryResponse::ResultSet(set) => {
                    let status = set.status;
                    result.get_or_insert((set.columns, set.rows));
                    status
                }
            };
            if status & logship_protocol::mysql::response::SERVER_MORE_RESULTS_EXISTS == 0 {
                return Ok(result.unwrap_or_default());
            }
            reader = QueryReader::new(self.capabilities);
        }
    }

    pub(super) async fn query_text(
        &mut self,
        sql: &str,
        label: &str,
    ) -> Result<Vec<Row>, MysqlError> {
        self.query_raw(sql, label).await
    }

    pub(super) fn error(&self, command: &str, kind: Kind) -> MysqlError {
        MysqlError::new(
            During::Command {
                addr: self.addr.clone(),
                command: command.to_string(),
            },
            kind,
        )
    }

    pub(super) fn check_error(&self, kind: Kind) -> MysqlError {
        MysqlError::new(
            During::Check {
                addr: self.addr.clone(),
            },
            kind,
        )
    }

    fn single_row<'a>(&self, rows: &'a [Row], label: &str) -> Result<&'a Row, MysqlError> {
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
    ) -> Result<&'a str, MysqlError> {
        match row.get(i) {
            Some(Some(v)) => {
                std::str::from_utf8(v).map_err(|_| self.bad_field(label, field, "not UTF-8"))
            }
            _ => Err(self.bad_field(label, field, "NULL")),
        }
    }

    fn parse<T: std::str::FromStr>(
        &self,
        row: &Row,
        i: usize,
        label: &str,
        field: &str,
    ) -> Result<T, MysqlError> {
        let text = self.text(row, i, label, field)?;
        text.parse().map_err(|_| self.bad_field(label, field, text))
    }

    fn file_name(&self, row: &Row, i: usize, label: &str) -> Result<BinlogFileName, MysqlError> {
        let text = self.text(row, i, label, "file name")?;
        self.file_name_text(text, label)
    }

    fn file_name_text(&self, text: &str, label: &str) -> Result<BinlogFileName, MysqlError> {
        BinlogFileName::new(text).map_err(|_| self.bad_field(label, "file name", text))
    }

    fn bad_field(&self, label: &str, field: &str, value: &str) -> MysqlError {
        self.error(label, Kind::Protocol(format!("field {field} is {value:?}")))
    }
}

/// TCP, the greeting, TLS as `sslmode` says, and the login exchange.
async fn login(
    opts: &ConnectOptions,
    local_files: bool,
) -> Result<(Wire, HandshakeV10, CapabilityFlags, bool), Kind> {
    if opts.sslmode() != SslMode::Disable {
        // A bad sslrootcert fails before any network traffic.
        transport::check_tls_setup(opts)?;
    }
    let tcp = transport::connect_tcp(opts.host(), opts.port()).await?;
    let mut wire = Wire::new(Transport::Plain(tcp), DEFAULT_MAX_PAYLOAD);
    let first = wire.read().await?;
    let greeting = match Greeting::parse(&first.payload) {
        Ok(Greeting::Handshake(h)) => h,
        Ok(Greeting::Refused(err)) => return Err(explain_login_error(err, opts)),
        Err(e) => return Err(Kind::Protocol(format!("the greeting does not parse: {e}"))),
    };
    let offers_tls = greeting.capabilities.contains(CapabilityFlags::SSL);
    let use_tls = match opts.sslmode() {
        SslMode::Disable => false,
        SslMode::Prefer => offers_tls,
        mode if !offers_tls => {
            return Err(Kind::TlsRefused {
                sslmode: mode.to_string(),
            });
        }
        _ => true,
    };
    let mut login_opts = LoginOptions::new(
        opts.user(),
        opts.password_value()
            .map(|p| p.as_str())
            .unwrap_or_default(),
    );
    login_opts.tls = use_tls;
    login_opts.local_files = local_files;
    login_opts.server_public_key_pem = opts.server_public_key_pem().map(str::to_string);
    login_opts.connect_attrs = vec![
        ("_client_name".to_string(), "logship".to_string()),
        ("program_name".to_string(), "logship".to_string()),
    ];
    let with_password = !login_opts.password.is_empty();
    let (mut machine, start) =
        Login::start(&greeting, login_opts).map_err(|e| auth_kind(e, opts))?;
    if let Some(ssl_request) = &start.ssl_request {
        wire.send(1, ssl_request);
        wire.flush().await?;
        if wire.has_buffered() {
            return Err(Kind::Protocol(
                "data arrived before the TLS handshake".into(),
            ));
        }
        let Transport::Plain(tcp) = wire.into_transport() else {
            return Err(Kind::Protocol("TLS requested twice".into()));
        };
        wire = Wire::new(transport::upgrade(tcp, opts).await?, DEFAULT_MAX_PAYLOAD);
    }
    wire.send(start.response_seq, &start.response);
    wire.flush().await?;
    loop {
        let packet = wire.read().await?;
        match machine.step(&packet.payload) {
            Ok(AuthStep::Done(_)) => break,
            Ok(AuthStep::Wait) => {}
            Ok(AuthStep::Send(payload)) => {
                wire.send(packet.next_seq(), &payload);
                wire.flush().await?;
            }
            Err(AuthError::Server(err)) => {
                let mut kind = explain_login_error(err, opts);
                if let Kind::AccessDenied {
                    with_password: w, ..
                } = &mut kind
                {
                    *w = *w || with_password;
                }
                return Err(kind);
            }
            Err(e) => return Err(auth_kind(e, opts)),
        }
    }
    Ok((wire, greeting, machine.capabilities(), use_tls))
}

fn auth_kind(e: AuthError, opts: &ConnectOptions) -> Kind {
    match e {
        AuthError::UnsupportedPlugin { name } => Kind::UnsupportedPlugin {
            plugin: name,
            user: opts.user().to_string(),
        },
        AuthError::Server(err) => explain_login_error(err, opts),
        other => Kind::Auth(other),
    }
}

/// Replaces a known login error with its explanation and fix.
fn explain_login_error(err: ErrPacket, opts: &ConnectOptions) -> Kind {
    match err.code {
        ER_ACCESS_DENIED_ERROR => Kind::AccessDenied {
            with_password: err.message.contains("using password: YES"),
            message: err.message,
        },
        ER_HOST_NOT_PRIVILEGED => Kind::HostNotAllowed {
            message: err.message,
            user: opts.user().to_string(),
        },
        ER_PLUGIN_IS_NOT_LOADED => Kind::PluginNotLoaded {
            message: err.message,
        },
        _ => Kind::Server(err),
    }
}

/// Whether a version string such as `10.11.19-MariaDB` is at least `min`.
pub(crate) fn version_at_least(version: &str, min: (u32, u32, u32)) -> bool {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let v = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    v >= min
}

/// The global privileges `SHOW GRANTS` lists, as far as reading binlogs cares.
#[derive(Debug, Default, PartialEq, Eq)]
struct Grants {
    replication_slave: bool,
    binlog_monitor: bool,
}

impl Grants {
    /// Reads `GRANT <privileges> ON *.* TO …` lines; grants on single databases do not count.
    fn parse<'a>(lines: impl Iterator<Item = &'a [u8]>) -> Grants {
        let mut grants = Grants::default();
        for line in lines {
            let line = String::from_utf8_lossy(line).to_ascii_uppercase();
            let Some(rest) = line.strip_prefix("GRANT ") else {
                continue;
            };
            let Some((privileges, _)) = rest.split_once(" ON *.* TO ") else {
                continue;
            };
            for privilege in privileges.split(',').map(str::trim) {
                match privilege {
                    "ALL" | "ALL PRIVILEGES" => {
                        grants.replication_slave = true;
                        grants.binlog_monitor = true;
                    }
                    "REPLICATION SLAVE" => grants.replication_slave = true,
                    // SUPER still allows SHOW BINARY LOGS; MariaDB 10.5.2 renamed
                    // REPLICATION CLIENT to BINLOG MONITOR and shows the new name.
                    "REPLICATION CLIENT" | "BINLOG MONITOR" | "SUPER" => {
                        grants.binlog_monitor = true;
                    }
                    _ => {}
                }
            }
        }
        grants
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(lines: &[&str]) -> Grants {
        Grants::parse(lines.iter().map(|l| l.as_bytes()))
    }

    #[test]
    fn reads_grants_of_mariadb_and_mysql() {
        let both = Grants {
            replication_slave: true,
            binlog_monitor: true,
        };
        assert_eq!(
            grants(&[
                "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `repl`@`%` IDENTIFIED BY PASSWORD '*AB'"
            ]),
            both
        );
        assert_eq!(
            grants(&["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `repl`@`%`"]),
            both
        );
        assert_eq!(
            grants(&["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]),
            both
        );
        assert_eq!(
            grants(&[
                "GRANT USAGE ON *.* TO `repl`@`%`",
                "GRANT ALL PRIVILEGES ON `shop`.* TO `repl`@`%`"
            ]),
            Grants::default()
        );
        assert_eq!(
            grants(&["GRANT REPLICATION SLAVE ON *.* TO `repl`@`%`"]),
            Grants {
                replication_slave: true,
                binlog_monitor: false
            }
        );
    }

    #[test]
    fn compares_versions() {
        assert!(version_at_least("10.11.19-MariaDB-0+deb12u1", (10, 5, 2)));
        assert!(!version_at_least("10.4.30-MariaDB", (10, 5, 2)));
        assert!(version_at_least("8.4.0", (8, 2, 0)));
        assert!(!version_at_least("8.0.36", (8, 2, 0)));
    }
}
