//! Commands a replication client sends, and the text-protocol replies to COM_QUERY.
//!
//! Every command starts a new exchange, so its packet has sequence id 0.

use bytes::{BufMut, Bytes, BytesMut};

use super::handshake::CapabilityFlags;
use super::lenenc::{ParseError, Reader, put_lenenc_bytes, put_lenenc_int};
use super::packet::encode_packet;
use super::response::{EOF_HEADER, ERR_HEADER, EofPacket, ErrPacket, OK_HEADER, OkPacket};

/// `COM_QUIT`.
pub const COM_QUIT: u8 = 0x01;
/// `COM_QUERY`.
pub const COM_QUERY: u8 = 0x03;
/// `COM_PING`.
pub const COM_PING: u8 = 0x0E;
/// `COM_BINLOG_DUMP`.
pub const COM_BINLOG_DUMP: u8 = 0x12;
/// `COM_REGISTER_SLAVE`.
pub const COM_REGISTER_SLAVE: u8 = 0x15;
/// `COM_BINLOG_DUMP_GTID` (MySQL 5.6 and later; MariaDB uses COM_BINLOG_DUMP and variables).
pub const COM_BINLOG_DUMP_GTID: u8 = 0x1E;

/// Dump flag: end with an EOF packet at the end of the binlog instead of waiting.
pub const BINLOG_DUMP_NON_BLOCK: u16 = 0x01;
/// MariaDB dump flag: send Annotate_rows events (the statement text of row events).
pub const BINLOG_SEND_ANNOTATE_ROWS_EVENT: u16 = 0x02;
/// COM_BINLOG_DUMP_GTID flag: the request carries a GTID set (set by the encoder as needed).
pub const BINLOG_THROUGH_GTID: u16 = 0x04;

/// A command that cannot be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A field is longer than its length prefix can say.
    #[error("{command}: the {field} is {len} bytes, at most {max} fit")]
    TooLong {
        /// The command.
        command: &'static str,
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The most the wire format allows.
        max: usize,
    },
}

/// `COM_REGISTER_SLAVE`: announces this client as a replica (it shows in `SHOW SLAVE HOSTS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterSlave {
    /// This replica's server id; must differ from every other replica's and the source's.
    pub server_id: u32,
    /// The host name to report (`report_host`), often empty.
    pub host: String,
    /// The user to report (`report_user`), often empty.
    pub user: String,
    /// The password to report (`report_password`), often empty.
    pub password: String,
    /// The port to report (`report_port`).
    pub port: u16,
    /// Unused by servers; 0.
    pub rank: u32,
    /// Unused by servers; 0.
    pub master_id: u32,
}

/// `COM_BINLOG_DUMP`: stream a binlog file from a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinlogDump {
    /// The byte offset to start at (4 for a file's first event). The wire field is 32 bits:
    /// a server reading a file beyond 4 GiB cannot be asked for a position there.
    pub position: u32,
    /// `BINLOG_DUMP_NON_BLOCK`, `BINLOG_SEND_ANNOTATE_ROWS_EVENT`.
    pub flags: u16,
    /// This replica's server id.
    pub server_id: u32,
    /// The binlog file name, such as `binlog.000001`; empty means the first file the server has.
    pub file: String,
}

/// `COM_BINLOG_DUMP_GTID` (MySQL): stream from the first transaction not in a GTID set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinlogDumpGtid {
    /// `BINLOG_DUMP_NON_BLOCK`; `BINLOG_THROUGH_GTID` is added when a set is given.
    pub flags: u16,
    /// This replica's server id.
    pub server_id: u32,
    /// A binlog file name (usually empty: the GTID set decides).
    pub file: String,
    /// A position in `file` (usually 4).
    pub position: u64,
    /// The executed GTID set in MySQL's binary encoding (`Gtid_set::encode`), if any.
    pub encoded_gtid_set: Option<Bytes>,
}

/// A command to send on the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `COM_QUERY` with the statement text.
    Query(String),
    /// `COM_QUIT`: the server closes the connection without a reply.
    Quit,
    /// `COM_PING`: the server replies OK.
    Ping,
    /// `COM_REGISTER_SLAVE`: the server replies OK or ERR.
    RegisterSlave(RegisterSlave),
    /// `COM_BINLOG_DUMP`: the server replies with the dump stream (see `dump`).
    BinlogDump(BinlogDump),
    /// `COM_BINLOG_DUMP_GTID`: the server replies with the dump stream.
    BinlogDumpGtid(BinlogDumpGtid),
}

impl Command {
    /// Appends the command's payload (its first byte is the command code).
    pub fn encode_payload(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Command::Query(sql) => {
                buf.put_u8(COM_QUERY);
                buf.put_slice(sql.as_bytes());
            }
            Command::Quit => buf.put_u8(COM_QUIT),
            Command::Ping => buf.put_u8(COM_PING),
            Command::RegisterSlave(r) => {
                buf.put_u8(COM_REGISTER_SLAVE);
                buf.put_u32_le(r.server_id);
                for (field, value) in [
                    ("host", &r.host),
                    ("user", &r.user),
                    ("password", &r.password),
                ] {
                    let len = u8::try_from(value.len()).map_err(|_| EncodeError::TooLong {
                        command: "COM_REGISTER_SLAVE",
                        field,
                        len: value.len(),
                        max: 255,
                    })?;
                    buf.put_u8(len);
                    buf.put_slice(value.as_bytes());
                }
                buf.put_u16_le(r.port);
                buf.put_u32_le(r.rank);
                buf.put_u32_le(r.master_id);
            }
            Command::BinlogDump(d) => {
                buf.put_u8(COM_BINLOG_DUMP);
                buf.put_u32_le(d.position);
                buf.put_u16_le(d.flags);
                buf.put_u32_le(d.server_id);
                // The name runs to the end of the packet, without a NUL.
                buf.put_slice(d.file.as_bytes());
            }
            Command::BinlogDumpGtid(d) => {
                let name_len = u32::try_from(d.file.len()).map_err(|_| EncodeError::TooLong {
                    command: "COM_BINLOG_DUMP_GTID",
                    field: "file name",
                    len: d.file.len(),
                    max: u32::MAX as usize,
                })?;
                let mut flags = d.flags & !BINLOG_THROUGH_GTID;
                if d.encoded_gtid_set.is_some() {
                    flags |= BINLOG_THROUGH_GTID;
                }
                buf.put_u8(COM_BINLOG_DUMP_GTID);
                buf.put_u16_le(flags);
                buf.put_u32_le(d.server_id);
                buf.put_u32_le(name_len);
                buf.put_slice(d.file.as_bytes());
                buf.put_u64_le(d.position);
                if let Some(set) = &d.encoded_gtid_set {
                    let set_len = u32::try_from(set.len()).map_err(|_| EncodeError::TooLong {
                        command: "COM_BINLOG_DUMP_GTID",
                        field: "GTID set",
                        len: set.len(),
                        max: u32::MAX as usize,
                    })?;
                    buf.put_u32_le(set_len);
                    buf.put_slice(set);
                }
            }
        }
        Ok(())
    }

    /// Parses a command payload as a server receives it; `Ok(None)` for a command code
    /// this module does not model (a server answers it with an ERR).
    ///
    /// `COM_BINLOG_DUMP_GTID` is MySQL's; MariaDB refuses it, and so does this parser.
    pub fn parse(payload: &[u8]) -> Result<Option<Command>, ParseError> {
        let mut r = Reader::new("command", payload);
        let code = r.u8("command code")?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Ok(Some(match code {
            COM_QUERY => Command::Query(text(r.rest())),
            COM_QUIT => Command::Quit,
            COM_PING => Command::Ping,
            COM_REGISTER_SLAVE => {
                let mut r = Reader::new("COM_REGISTER_SLAVE", payload.get(1..).unwrap_or_default());
                let server_id = r.u32("server id")?;
                let mut field = |name: &'static str| -> Result<String, ParseError> {
                    let len = r.u8(name)?;
                    Ok(text(r.bytes(name, usize::from(len))?))
                };
                let host = field("host")?;
                let user = field("user")?;
                let password = field("password")?;
                // Servers accept the request without the trailing fields, and so does this.
                let port = if r.remaining() >= 2 {
                    r.u16("port")?
                } else {
                    0
                };
                let rank = if r.remaining() >= 4 {
                    r.u32("rank")?
                } else {
                    0
                };
                let master_id = if r.remaining() >= 4 {
                    r.u32("master id")?
                } else {
                    0
                };
                Command::RegisterSlave(RegisterSlave {
                    server_id,
                    host,
                    user,
                    password,
                    port,
                    rank,
                    master_id,
                })
            }
            COM_BINLOG_DUMP => {
                let mut r = Reader::new("COM_BINLOG_DUMP", payload.get(1..).unwrap_or_default());
                let position = r.u32("position")?;
                let flags = r.u16("flags")?;
                let server_id = r.u32("server id")?;
                Command::BinlogDump(BinlogDump {
                    position,
                    flags,
                    server_id,
                    file: text(r.rest()),
                })
            }
            _ => return Ok(None),
        }))
    }

    /// Appends the command as packets with sequence id 0 (split if it is 16 MiB or more).
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let mut payload = BytesMut::new();
        self.encode_payload(&mut payload)?;
        encode_packet(0, &payload, buf);
        Ok(())
    }
}

/// A column of a text result set (`Protocol::ColumnDefinition41`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnDefinition {
    /// The schema of the column's table, if any.
    pub schema: String,
    /// The table (alias) the column comes from, if any.
    pub table: String,
    /// The column's name (alias) in the result.
    pub name: String,
    /// The collation id of the column's values.
    pub charset: u16,
    /// The column's maximum length.
    pub column_length: u32,
    /// The column's type (`MYSQL_TYPE_*`).
    pub column_type: u8,
    /// The column's flags (`NOT_NULL_FLAG` and so on).
    pub flags: u16,
    /// The number of decimals shown.
    pub decimals: u8,
}

impl ColumnDefinition {
    /// A text column named `name` of type `column_type` (`MYSQL_TYPE_*`), in collation
    /// `charset`, with no table behind it (what a `SELECT` of an expression returns).
    pub fn expression(name: &str, column_type: u8, charset: u16) -> ColumnDefinition {
        ColumnDefinition {
            schema: String::new(),
            table: String::new(),
            name: name.to_owned(),
            charset,
            column_length: 1024,
            column_type,
            flags: 0,
            decimals: 0,
        }
    }

    /// Appends the ColumnDefinition41 payload; the original table and name repeat the
    /// table and name.
    pub fn encode(&self, buf: &mut BytesMut) {
        for field in [
            "def",
            &self.schema,
            &self.table,
            &self.table,
            &self.name,
            &self.name,
        ] {
            put_lenenc_bytes(buf, field.as_bytes());
        }
        put_lenenc_int(buf, 0x0C);
        buf.put_u16_le(self.charset);
        buf.put_u32_le(self.column_length);
        buf.put_u8(self.column_type);
        buf.put_u16_le(self.flags);
        buf.put_u8(self.decimals);
        buf.put_bytes(0, 2);
    }

    /// Parses a ColumnDefinition41 payload.
    pub fn parse(payload: &[u8]) -> Result<ColumnDefinition, ParseError> {
        let mut r = Reader::new("column definition", payload);
        let catalog = r.lenenc_bytes("catalog")?;
        if catalog != b"def" {
            return Err(r.malformed(format!(
                "its catalog is {:?}, not \"def\" (is this a column definition?)",
                String::from_utf8_lossy(catalog)
            )));
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let schema = text(r.lenenc_bytes("schema")?);
        let table = text(r.lenenc_bytes("table")?);
        r.lenenc_bytes("original table")?;
        let name = text(r.lenenc_bytes("name")?);
        r.lenenc_bytes("original name")?;
        r.lenenc_int("length of fixed fields")?;
        let charset = r.u16("character set")?;
        let column_length = r.u32("column length")?;
        let column_type = r.u8("type")?;
        let flags = r.u16("flags")?;
        let decimals = r.u8("decimals")?;
        Ok(ColumnDefinition {
            schema,
            table,
            name,
            charset,
            column_length,
            column_type,
            flags,
            decimals,
        })
    }
}

/// One row of a text result set: each value as the server's text, `None` for SQL NULL.
pub type Row = Vec<Option<Bytes>>;

/// A complete text result set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultSet {
    /// The columns, in order.
    pub columns: Vec<ColumnDefinition>,
    /// The rows, in order.
    pub rows: Vec<Row>,
    /// The status flags of the packet that ended the rows.
    pub status: u16,
}

impl ResultSet {
    /// Appends the result set as the packets of a COM_QUERY reply, the first with sequence
    /// id `seq`; returns the id after the last. With `CLIENT_DEPRECATE_EOF` in
    /// `capabilities` the columns end without an EOF and the rows with an OK (0xFE).
    pub fn encode(&self, capabilities: CapabilityFlags, seq: u8, buf: &mut BytesMut) -> u8 {
        let deprecate_eof = capabilities.contains(CapabilityFlags::DEPRECATE_EOF);
        let mut payload = BytesMut::new();
        put_lenenc_int(&mut payload, self.columns.len() as u64);
        let mut seq = encode_packet(seq, &payload, buf);
        for column in &self.columns {
            payload.clear();
            column.encode(&mut payload);
            seq = encode_packet(seq, &payload, buf);
        }
        let eof = EofPacket {
            warnings: 0,
            status: self.status,
        };
        if !deprecate_eof {
            payload.clear();
            eof.encode(&mut payload);
            seq = encode_packet(seq, &payload, buf);
        }
        for row in &self.rows {
            payload.clear();
            for value in row {
                match value {
                    Some(v) => put_lenenc_bytes(&mut payload, v),
                    None => payload.put_u8(0xFB),
                }
            }
            seq = encode_packet(seq, &payload, buf);
        }
        payload.clear();
        if deprecate_eof {
            OkPacket {
                affected_rows: 0,
                last_insert_id: 0,
                status: self.status,
                warnings: 0,
                info: Bytes::new(),
            }
            .encode_with_header(EOF_HEADER, &mut payload);
        } else {
            eof.encode(&mut payload);
        }
        encode_packet(seq, &payload, buf)
    }

    /// The value of `row`'s column `name` as text, if the row and column exist and it is not NULL.
    pub fn get(&self, row: usize, name: &str) -> Option<&[u8]> {
        let column = self.columns.iter().position(|c| c.name == name)?;
        self.rows.get(row)?.get(column)?.as_deref()
    }
}

/// The reply to a COM_QUERY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryResponse {
    /// A statement without a result set (SET, INSERT, ...).
    Ok(OkPacket),
    /// A result set.
    ResultSet(ResultSet),
}

/// A COM_QUERY reply that does not end in a result.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The server refused the statement.
    #[error("the server refused the query: {0}")]
    Server(ErrPacket),
    /// The server asked for a local file (LOAD DATA LOCAL), which this client never allows.
    #[error("the server asked for a local file (LOAD DATA LOCAL INFILE); refused")]
    LocalInfile,
    /// A packet did not parse.
    #[error(transparent)]
    Malformed(#[from] ParseError),
    /// More packets were fed after the reply was complete.
    #[error("the query reply is already complete")]
    Finished,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QueryStage {
    Start,
    Columns { left: u64 },
    ColumnsEof,
    Rows,
    Done,
}

/// One step of a COM_QUERY reply, as [`RowStreamReader::push`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowStep {
    /// A header or column packet: more follow.
    Pending,
    /// The statement had no result set.
    Ok(OkPacket),
    /// One text row, as its payload: read its values with [`TextValues`].
    Row(Bytes),
    /// The rows ended; the status flags of the packet that ended them.
    Done {
        /// `SERVER_MORE_RESULTS_EXISTS` and so on.
        status: u16,
    },
}

/// Decodes the reply to one COM_QUERY a packet at a time, handing each row back as it comes
/// (sans-IO): for result sets too large to collect.
#[derive(Debug)]
pub struct RowStreamReader {
    deprecate_eof: bool,
    stage: QueryStage,
    columns: Vec<ColumnDefinition>,
}

impl RowStreamReader {
    /// A reader for a session with `capabilities` (whether `CLIENT_DEPRECATE_EOF` is on decides
    /// how the reply ends).
    pub fn new(capabilities: CapabilityFlags) -> RowStreamReader {
        RowStreamReader {
            deprecate_eof: capabilities.contains(CapabilityFlags::DEPRECATE_EOF),
            stage: QueryStage::Start,
            columns: Vec::new(),
        }
    }

    /// The result set's columns, once they have arrived.
    pub fn columns(&self) -> &[ColumnDefinition] {
        &self.columns
    }

    /// Consumes one reply payload.
    ///
    /// With several statements or results (`SERVER_MORE_RESULTS_EXISTS` in the final status),
    /// start a new reader for the next one.
    pub fn push(&mut self, payload: &Bytes) -> Result<RowStep, QueryError> {
        let first = payload.first().copied();
        if first == Some(ERR_HEADER) && self.stage != QueryStage::Done {
            self.stage = QueryStage::Done;
            return Err(QueryError::Server(ErrPacket::parse(payload)?));
        }
        match self.stage {
            QueryStage::Start => match first {
                Some(OK_HEADER) => {
                    self.stage = QueryStage::Done;
                    Ok(RowStep::Ok(OkPacket::parse(payload)?))
                }
                Some(0xFB) => {
                    self.stage = QueryStage::Done;
                    Err(QueryError::LocalInfile)
                }
                _ => {
                    let mut r = Reader::new("result set header", payload);
                    let count = r.lenenc_int("column count")?;
                    if count == 0 {
                        return Err(r.malformed("its column count is 0".to_owned()).into());
                    }
                    self.stage = QueryStage::Columns { left: count };
                    Ok(RowStep::Pending)
                }
            },
            QueryStage::Columns { left } => {
                self.columns.push(ColumnDefinition::parse(payload)?);
                self.stage = match left.saturating_sub(1) {
                    0 if self.deprecate_eof => QueryStage::Rows,
                    0 => QueryStage::ColumnsEof,
                    left => QueryStage::Columns { left },
                };
                Ok(RowStep::Pending)
            }
            QueryStage::ColumnsEof => {
                EofPacket::parse(payload)?;
                self.stage = QueryStage::Rows;
                Ok(RowStep::Pending)
            }
            QueryStage::Rows => {
                if self.is_terminator(payload) {
                    self.stage = QueryStage::Done;
                    let status = if self.deprecate_eof {
                        OkPacket::parse(payload)?.status
                    } else {
                        EofPacket::parse(payload)?.status
                    };
                    return Ok(RowStep::Done { status });
                }
                Ok(RowStep::Row(payload.clone()))
            }
            QueryStage::Done => Err(QueryError::Finished),
        }
    }

    fn is_terminator(&self, payload: &[u8]) -> bool {
        let limit = if self.deprecate_eof {
            super::packet::MAX_CHUNK
        } else {
            9
        };
        payload.first() == Some(&EOF_HEADER) && payload.len() < limit
    }
}

/// The values of one text row, in column order: `None` for SQL NULL, else the server's
/// bytes, borrowed from the payload.
pub struct TextValues<'a> {
    reader: Reader<'a>,
}

impl<'a> TextValues<'a> {
    /// The values of the row `payload`.
    pub fn new(payload: &'a [u8]) -> TextValues<'a> {
        TextValues {
            reader: Reader::new("text row", payload),
        }
    }

    /// The next value; `Ok(None)` once the row is used up.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Option<&'a [u8]>>, ParseError> {
        if self.reader.is_empty() {
            return Ok(None);
        }
        if self.reader.peek() == Some(0xFB) {
            self.reader.u8("NULL marker")?;
            return Ok(Some(None));
        }
        Ok(Some(Some(self.reader.lenenc_bytes("value")?)))
    }

    /// Fails unless every value has been read.
    pub fn finish(self, columns: usize) -> Result<(), ParseError> {
        if self.reader.is_empty() {
            return Ok(());
        }
        Err(self.reader.malformed(format!(
            "{} bytes are left after its {columns} values",
            self.reader.remaining()
        )))
    }
}

/// Decodes the reply to one COM_QUERY, a packet at a time (sans-IO), collecting the rows.
#[derive(Debug)]
pub struct QueryReader {
    inner: RowStreamReader,
    rows: Vec<Row>,
}

impl QueryReader {
    /// A reader for a session with `capabilities` (whether `CLIENT_DEPRECATE_EOF` is on decides
    /// how the reply ends).
    pub fn new(capabilities: CapabilityFlags) -> QueryReader {
        QueryReader {
            inner: RowStreamReader::new(capabilities),
            rows: Vec::new(),
        }
    }

    /// Consumes one reply payload; `Ok(None)` means more packets follow.
    ///
    /// With several statements or results (`SERVER_MORE_RESULTS_EXISTS` in the final status),
    /// start a new reader for the next one.
    pub fn push(&mut self, payload: &Bytes) -> Result<Option<QueryResponse>, QueryError> {
        match self.inner.push(payload)? {
            RowStep::Pending => Ok(None),
            RowStep::Ok(ok) => Ok(Some(QueryResponse::Ok(ok))),
            RowStep::Row(row) => {
                let row = self.parse_row(&row)?;
                self.rows.push(row);
                Ok(None)
            }
            RowStep::Done { status } => Ok(Some(QueryResponse::ResultSet(ResultSet {
                columns: std::mem::take(&mut self.inner.columns),
                rows: std::mem::take(&mut self.rows),
                status,
            }))),
        }
    }

    fn parse_row(&self, payload: &Bytes) -> Result<Row, ParseError> {
        let columns = self.inner.columns.len();
        let mut values = TextValues::new(payload);
        let mut row = Vec::with_capacity(columns);
        for _ in 0..columns {
            let Some(value) = values.next()? else {
                return Err(ParseError::Truncated {
                    message: "text row",
                    field: "value",
                    needed: 1,
                    left: 0,
                });
            };
            row.push(value.map(|v| payload.slice_ref(v)));
        }
        values.finish(columns)?;
        Ok(row)
    }
}
