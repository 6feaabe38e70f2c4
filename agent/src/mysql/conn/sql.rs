//! `SqlConnection`: a plain SQL session, for logical backups and their loads: statements,
//! result sets streamed a row at a time as raw bytes, and `LOAD DATA LOCAL INFILE` fed from
//! memory. Unlike [`super::MysqlConnection`] it checks nothing about the binlog, so it also
//! serves a server being restored.

use bytes::{Bytes, BytesMut};
use logship_protocol::mysql::packet::MAX_CHUNK;
use logship_protocol::mysql::{
    ColumnDefinition, Command, ErrPacket, OkPacket, QueryError, RowStep, RowStreamReader,
};

use super::connection::{Session, version_at_least};
use super::error::{Kind, MysqlError};
use super::options::ConnectOptions;

/// The largest data packet of a `LOAD DATA LOCAL` upload; well below any `max_allowed_packet`.
const INFILE_PACKET: usize = 1 << 20;

/// One logged-in SQL session.
pub struct SqlConnection {
    session: Session,
}

impl SqlConnection {
    /// Connects and logs in; with `local_files` the session can run `LOAD DATA LOCAL INFILE`
    /// through [`SqlConnection::load_local`].
    pub async fn connect(
        opts: &ConnectOptions,
        local_files: bool,
    ) -> Result<SqlConnection, MysqlError> {
        let mut session = super::connection::Session::open(opts, local_files).await?;
        session
            .wire
            .set_max_payload(super::connection::DEFAULT_MAX_PAYLOAD);
        Ok(SqlConnection { session })
    }

    /// The server's version (without MariaDB's `5.5.5-` prefix).
    pub fn version(&self) -> &str {
        self.session.version()
    }

    /// Whether the server is MariaDB.
    pub fn is_mariadb(&self) -> bool {
        self.session.is_mariadb
    }

    /// Whether the server's version is at least `min`.
    pub fn version_at_least(&self, min: (u32, u32, u32)) -> bool {
        version_at_least(self.session.version(), min)
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> &str {
        &self.session.addr
    }

    /// Runs one statement; the rows of its result as text, `None` for SQL NULL.
    pub async fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, MysqlError> {
        self.session.query(sql).await
    }

    /// Runs statements that return no rows (or whose rows do not matter), one at a time.
    pub async fn execute(&mut self, statements: &[&str]) -> Result<(), MysqlError> {
        for sql in statements {
            self.session.query_text(sql, &label(sql)).await?;
        }
        Ok(())
    }

    /// Runs a query and hands its rows back one at a time, as they arrive.
    pub async fn query_rows(&mut self, sql: &str) -> Result<RowStream<'_>, MysqlError> {
        let label = label(sql);
        let mut stream = RowStream {
            reader: RowStreamReader::new(self.session.capabilities()),
            session: &mut self.session,
            label,
            done: false,
        };
        stream.send(sql).await?;
        // Read up to the first row or the end, so that the columns are known.
        stream.fill_columns().await?;
        Ok(stream)
    }

    /// Runs `LOAD DATA LOCAL INFILE ...` (`sql`) and sends `data` as the file the server asks
    /// for; returns the rows the server loaded. A warning fails the load: with it the loaded
    /// rows may differ from `data`.
    pub async fn load_local(&mut self, sql: &str, data: &[u8]) -> Result<u64, MysqlError> {
        let label = label(sql);
        let result = self.load_local_kind(sql, data).await;
        let ok = result.map_err(|kind| self.session.error(&label, kind))?;
        if ok.warnings > 0 {
            let rows = self.session.query("SHOW WARNINGS LIMIT 1").await?;
            let first = rows
                .first()
                .map(|row| {
                    row.iter()
                        .map(|v| v.clone().unwrap_or_default())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            return Err(self.session.error(
                &label,
                Kind::Protocol(format!(
                    "the load raised {} warnings, the first: {first}",
                    ok.warnings
                )),
            ));
        }
        Ok(ok.affected_rows)
    }

    async fn load_local_kind(&mut self, sql: &str, data: &[u8]) -> Result<OkPacket, Kind> {
        let wire = &mut self.session.wire;
        let mut buf = BytesMut::new();
        Command::Query(sql.to_string())
            .encode(&mut buf)
            .map_err(|e| Kind::Protocol(e.to_string()))?;
        wire.out().extend_from_slice(&buf);
        wire.flush().await?;
        let request = wire.read().await?;
        match request.payload.first() {
            // The server names the file it wants; it is `data`, whatever the name.
            Some(0xFB) => {}
            Some(0xFF) => return Err(server_error(&request.payload)),
            _ => {
                return Err(Kind::Protocol(
                    "the server did not ask for the LOCAL INFILE data (is local_infile off?)"
                        .into(),
                ));
            }
        }
        let mut seq = request.next_seq();
        for packet in data.chunks(INFILE_PACKET.min(MAX_CHUNK - 1)) {
            wire.send(seq, packet);
            seq = seq.wrapping_add(1);
            if wire.out().len() >= 4 * INFILE_PACKET {
                wire.flush().await?;
            }
        }
        // An empty packet ends the file.
        wire.send(seq, &[]);
        wire.flush().await?;
        let reply = wire.read().await?;
        match reply.payload.first() {
            Some(0x00) => {
                OkPacket::parse(&reply.payload).map_err(|e| Kind::Protocol(e.to_string()))
            }
            Some(0xFF) => Err(server_error(&reply.payload)),
            _ => Err(Kind::Protocol(
                "the reply to LOAD DATA is neither OK nor ERR".into(),
            )),
        }
    }

    /// Ends the session politely (COM_QUIT).
    pub async fn close(self) {
        self.session.close().await;
    }
}

/// The rows of one query, read off the socket as they come.
pub struct RowStream<'a> {
    session: &'a mut Session,
    reader: RowStreamReader,
    label: String,
    /// A row read while looking for the columns, not handed out yet.
    done: bool,
}

impl RowStream<'_> {
    /// The result's columns (empty for a statement without a result set).
    pub fn columns(&self) -> &[ColumnDefinition] {
        self.reader.columns()
    }

    /// The next row's payload, to read with [`logship_protocol::mysql::TextValues`];
    /// `None` after the last one. Read to the end before the next statement.
    pub async fn next(&mut self) -> Result<Option<Bytes>, MysqlError> {
        if self.done {
            return Ok(None);
        }
        loop {
            let packet = match self.session.wire.read().await {
                Ok(packet) => packet,
                Err(kind) => return Err(self.session.error(&self.label, kind)),
            };
            match self.reader.push(&packet.payload) {
                Ok(RowStep::Pending) => {}
                Ok(RowStep::Row(row)) => return Ok(Some(row)),
                Ok(RowStep::Ok(_) | RowStep::Done { .. }) => {
                    self.done = true;
                    return Ok(None);
                }
                Err(err) => {
                    self.done = true;
                    return Err(self.session.error(&self.label, query_kind(err)));
                }
            }
        }
    }

    async fn send(&mut self, sql: &str) -> Result<(), MysqlError> {
        let mut buf = BytesMut::new();
        let sent = async {
            Command::Query(sql.to_string())
                .encode(&mut buf)
                .map_err(|e| Kind::Protocol(e.to_string()))?;
            self.session.wire.out().extend_from_slice(&buf);
            self.session.wire.flush().await
        };
        sent.await
            .map_err(|kind| self.session.error(&self.label, kind))
    }

    /// Reads the header and column packets (the reader keeps the columns).
    async fn fill_columns(&mut self) -> Result<(), MysqlError> {
        // The header, then one packet per column; the reader says Pending for each.
        let packet = match self.session.wire.read().await {
            Ok(packet) => packet,
            Err(kind) => return Err(self.session.error(&self.label, kind)),
        };
        match self.reader.push(&packet.payload) {
            Ok(RowStep::Pending) => {}
            Ok(_) => {
                self.done = true;
                return Ok(());
            }
            Err(err) => {
                self.done = true;
                return Err(self.session.error(&self.label, query_kind(err)));
            }
        }
        let Some(count) = column_count(&packet.payload) else {
            return Ok(());
        };
        while (self.reader.columns().len() as u64) < count {
            let packet = match self.session.wire.read().await {
                Ok(packet) => packet,
                Err(kind) => return Err(self.session.error(&self.label, kind)),
            };
            if let Err(err) = self.reader.push(&packet.payload) {
                self.done = true;
                return Err(self.session.error(&self.label, query_kind(err)));
            }
        }
        Ok(())
    }
}

/// The column count of a result set header.
fn column_count(payload: &[u8]) -> Option<u64> {
    let mut input = payload;
    logship_protocol::mysql::lenenc::read_lenenc_int(&mut input).ok()?
}

fn query_kind(err: QueryError) -> Kind {
    match err {
        QueryError::Server(err) => Kind::Server(err),
        other => Kind::Protocol(other.to_string()),
    }
}

fn server_error(payload: &[u8]) -> Kind {
    match ErrPacket::parse(payload) {
        Ok(err) => Kind::Server(err),
        Err(e) => Kind::Protocol(e.to_string()),
    }
}

/// A statement's first words, for errors: the rest may be long or hold secrets.
fn label(sql: &str) -> String {
    sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}
