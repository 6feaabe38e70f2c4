//! The server's generic replies: OK, ERR and EOF, and the two packets of an authentication
//! exchange, AuthSwitchRequest and AuthMoreData.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::handshake::CapabilityFlags;
use super::lenenc::{ParseError, Reader, put_lenenc_int};

/// First byte of an OK packet.
pub const OK_HEADER: u8 = 0x00;
/// First byte of an EOF packet, of an AuthSwitchRequest, and of an OK that ends a result set
/// under `CLIENT_DEPRECATE_EOF`.
pub const EOF_HEADER: u8 = 0xFE;
/// First byte of an ERR packet.
pub const ERR_HEADER: u8 = 0xFF;
/// First byte of an AuthMoreData packet.
pub const AUTH_MORE_DATA_HEADER: u8 = 0x01;

/// Server status flag: more results follow this one.
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

/// A successful reply (`OK_Packet`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OkPacket {
    /// Rows changed by the statement.
    pub affected_rows: u64,
    /// The last auto-increment id the statement generated.
    pub last_insert_id: u64,
    /// The server status flags (`SERVER_STATUS_*`).
    pub status: u16,
    /// The number of warnings the statement raised.
    pub warnings: u16,
    /// The human-readable info text, if any (session-state data is not decoded).
    pub info: Bytes,
}

impl OkPacket {
    /// Parses an OK packet; its first byte must be 0x00, or 0xFE where it ends a result set.
    pub fn parse(payload: &[u8]) -> Result<OkPacket, ParseError> {
        let mut r = Reader::new("OK packet", payload);
        let header = r.u8("header")?;
        if header != OK_HEADER && header != EOF_HEADER {
            return Err(r.malformed(format!("it starts with 0x{header:02X}, not 0x00 or 0xFE")));
        }
        let affected_rows = r.lenenc_int("affected row count")?;
        let last_insert_id = r.lenenc_int("last insert id")?;
        // Pre-4.1 servers stop here; every server this agent talks to sends both.
        let status = if r.is_empty() {
            0
        } else {
            r.u16("status flags")?
        };
        let warnings = if r.is_empty() {
            0
        } else {
            r.u16("warning count")?
        };
        Ok(OkPacket {
            affected_rows,
            last_insert_id,
            status,
            warnings,
            info: Bytes::copy_from_slice(r.rest()),
        })
    }

    /// Appends the OK payload (header 0x00); the info text goes last, as sent without
    /// `CLIENT_SESSION_TRACK`.
    pub fn encode(&self, buf: &mut BytesMut) {
        self.encode_with_header(OK_HEADER, buf);
    }

    /// Appends the OK payload with `header`: 0xFE where it ends a result set under
    /// `CLIENT_DEPRECATE_EOF`.
    pub(crate) fn encode_with_header(&self, header: u8, buf: &mut BytesMut) {
        buf.put_u8(header);
        put_lenenc_int(buf, self.affected_rows);
        put_lenenc_int(buf, self.last_insert_id);
        buf.put_u16_le(self.status);
        buf.put_u16_le(self.warnings);
        buf.put_slice(&self.info);
    }
}

/// An error reply (`ERR_Packet`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrPacket {
    /// The server's error number, such as 1045 (access denied) or 1236 (binlog read error).
    pub code: u16,
    /// The five-character SQL state, when the server sent one.
    pub sql_state: Option<String>,
    /// The server's message.
    pub message: String,
}

impl ErrPacket {
    /// Parses an ERR packet (first byte 0xFF).
    pub fn parse(payload: &[u8]) -> Result<ErrPacket, ParseError> {
        let mut r = Reader::new("ERR packet", payload);
        let header = r.u8("header")?;
        if header != ERR_HEADER {
            return Err(r.malformed(format!("it starts with 0x{header:02X}, not 0xFF")));
        }
        let code = r.u16("error code")?;
        // The '#' and SQL state are absent in errors sent before the capabilities are agreed.
        let sql_state = if r.peek() == Some(b'#') && r.remaining() >= 6 {
            r.u8("SQL state marker")?;
            Some(String::from_utf8_lossy(r.bytes("SQL state", 5)?).into_owned())
        } else {
            None
        };
        Ok(ErrPacket {
            code,
            sql_state,
            message: String::from_utf8_lossy(r.rest()).into_owned(),
        })
    }

    /// Appends the ERR payload; a SQL state that is not 5 bytes is sent as `HY000`.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(ERR_HEADER);
        buf.put_u16_le(self.code);
        if let Some(state) = &self.sql_state {
            buf.put_u8(b'#');
            let state = if state.len() == 5 {
                state.as_str()
            } else {
                "HY000"
            };
            buf.put_slice(state.as_bytes());
        }
        buf.put_slice(self.message.as_bytes());
    }
}

impl fmt::Display for ErrPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sql_state {
            Some(state) => write!(f, "ERROR {} ({}): {}", self.code, state, self.message),
            None => write!(f, "ERROR {}: {}", self.code, self.message),
        }
    }
}

/// The end of a column list or of rows without `CLIENT_DEPRECATE_EOF` (`EOF_Packet`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EofPacket {
    /// The number of warnings.
    pub warnings: u16,
    /// The server status flags.
    pub status: u16,
}

impl EofPacket {
    /// Parses an EOF packet (first byte 0xFE, fewer than 9 bytes).
    pub fn parse(payload: &[u8]) -> Result<EofPacket, ParseError> {
        let mut r = Reader::new("EOF packet", payload);
        let header = r.u8("header")?;
        if header != EOF_HEADER || payload.len() >= 9 {
            return Err(r.malformed(format!(
                "it starts with 0x{header:02X} and has {} bytes; an EOF packet is 0xFE and \
                 shorter than 9 bytes",
                payload.len()
            )));
        }
        let warnings = if r.is_empty() {
            0
        } else {
            r.u16("warning count")?
        };
        let status = if r.is_empty() {
            0
        } else {
            r.u16("status flags")?
        };
        Ok(EofPacket { warnings, status })
    }

    /// Appends the EOF payload (5 bytes).
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(EOF_HEADER);
        buf.put_u16_le(self.warnings);
        buf.put_u16_le(self.status);
    }

    /// Whether a payload is an EOF packet rather than data that happens to start with 0xFE.
    pub fn is_eof(payload: &[u8]) -> bool {
        payload.first() == Some(&EOF_HEADER) && payload.len() < 9
    }
}

/// The server asks the client to authenticate again with another plugin (0xFE during login).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSwitchRequest {
    /// The plugin to switch to, such as `client_ed25519`.
    pub plugin: String,
    /// The plugin's data: for the scramble-based plugins a new nonce, often with a trailing NUL.
    pub data: Bytes,
}

impl AuthSwitchRequest {
    /// Parses an AuthSwitchRequest (first byte 0xFE, then the plugin name and its data).
    pub fn parse(payload: &[u8]) -> Result<AuthSwitchRequest, ParseError> {
        let mut r = Reader::new("AuthSwitchRequest", payload);
        let header = r.u8("header")?;
        if header != EOF_HEADER {
            return Err(r.malformed(format!("it starts with 0x{header:02X}, not 0xFE")));
        }
        if r.is_empty() {
            // A lone 0xFE is the pre-4.1 "use the old password hash" request.
            return Err(r.malformed(
                "it names no plugin: the server asks for the pre-4.1 password hash \
                 (mysql_old_password), which this client does not support"
                    .to_owned(),
            ));
        }
        let plugin = String::from_utf8_lossy(r.nul_terminated("plugin name")?).into_owned();
        Ok(AuthSwitchRequest {
            plugin,
            data: Bytes::copy_from_slice(r.rest()),
        })
    }

    /// Appends the AuthSwitchRequest payload: 0xFE, the plugin name and NUL, the data.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(EOF_HEADER);
        buf.put_slice(self.plugin.as_bytes());
        buf.put_u8(0);
        buf.put_slice(&self.data);
    }
}

/// Extra data from the server's authentication plugin (0x01 during login).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthMoreData {
    /// The plugin's bytes, such as caching_sha2_password's status byte or a PEM public key.
    pub data: Bytes,
}

impl AuthMoreData {
    /// Parses an AuthMoreData packet (first byte 0x01).
    pub fn parse(payload: &[u8]) -> Result<AuthMoreData, ParseError> {
        let mut r = Reader::new("AuthMoreData", payload);
        let header = r.u8("header")?;
        if header != AUTH_MORE_DATA_HEADER {
            return Err(r.malformed(format!("it starts with 0x{header:02X}, not 0x01")));
        }
        Ok(AuthMoreData {
            data: Bytes::copy_from_slice(r.rest()),
        })
    }
}

/// What a reply to a command is, judged by its first byte alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    /// 0x00: OK.
    Ok,
    /// 0xFF: ERR.
    Err,
    /// 0xFE and short: EOF (or, under `CLIENT_DEPRECATE_EOF`, an OK that ends rows).
    Eof,
    /// Anything else: data, such as a result set's column count.
    Data,
}

impl ReplyKind {
    /// Classifies a reply payload; an empty payload counts as data.
    pub fn of(payload: &[u8], capabilities: CapabilityFlags) -> ReplyKind {
        // Under DEPRECATE_EOF a terminating OK may be long, but a row starting with 0xFE holds a
        // string of 2^24 bytes or more, so it fills at least one whole packet.
        let eof_limit = if capabilities.contains(CapabilityFlags::DEPRECATE_EOF) {
            super::packet::MAX_CHUNK
        } else {
            9
        };
        match payload.first() {
            Some(&OK_HEADER) => ReplyKind::Ok,
            Some(&ERR_HEADER) => ReplyKind::Err,
            Some(&EOF_HEADER) if payload.len() < eof_limit => ReplyKind::Eof,
            _ => ReplyKind::Data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_err_packet_with_and_without_sql_state() {
        let err = ErrPacket::parse(b"\xff\x15\x04#28000Access denied").unwrap();
        assert_eq!(err.code, 1045);
        assert_eq!(err.sql_state.as_deref(), Some("28000"));
        assert_eq!(err.to_string(), "ERROR 1045 (28000): Access denied");
        let early = ErrPacket::parse(b"\xff\x10\x04Too many connections").unwrap();
        assert_eq!(early.sql_state, None);
        assert_eq!(early.message, "Too many connections");
    }

    #[test]
    fn parses_ok_and_eof() {
        let ok = OkPacket::parse(&[0, 1, 0xFC, 0x00, 0x01, 2, 0, 3, 0, b'h']).unwrap();
        assert_eq!(
            (ok.affected_rows, ok.last_insert_id, ok.status, ok.warnings),
            (1, 256, 2, 3)
        );
        assert_eq!(&ok.info[..], b"h");
        assert_eq!(
            EofPacket::parse(&[0xFE, 0, 0, 2, 0]).unwrap(),
            EofPacket {
                warnings: 0,
                status: 2
            }
        );
        assert!(EofPacket::parse(&[0xFE; 9]).is_err());
    }

    #[test]
    fn classifies_replies_by_first_byte_and_length() {
        let plain = CapabilityFlags::default();
        let deprecate = CapabilityFlags::DEPRECATE_EOF;
        assert_eq!(ReplyKind::of(&[0x00, 0, 0], plain), ReplyKind::Ok);
        assert_eq!(ReplyKind::of(&[0xFF, 0, 0], plain), ReplyKind::Err);
        assert_eq!(ReplyKind::of(&[0xFE, 0, 0, 2, 0], plain), ReplyKind::Eof);
        // A long 0xFE is a row (an 8-byte length) without DEPRECATE_EOF, an OK with it.
        assert_eq!(ReplyKind::of(&[0xFE; 12], plain), ReplyKind::Data);
        assert_eq!(ReplyKind::of(&[0xFE; 12], deprecate), ReplyKind::Eof);
        assert_eq!(ReplyKind::of(&[0x03, b'd'], plain), ReplyKind::Data);
    }

    #[test]
    fn encoded_replies_parse_back() {
        let ok = OkPacket {
            affected_rows: 300,
            last_insert_id: 1 << 20,
            status: 2,
            warnings: 1,
            info: Bytes::from_static(b"Rows matched: 1"),
        };
        let mut buf = BytesMut::new();
        ok.encode(&mut buf);
        assert_eq!(OkPacket::parse(&buf).unwrap(), ok);
        let err = ErrPacket {
            code: 1236,
            sql_state: Some("HY000".into()),
            message: "Could not find first log file name in binary log index file".into(),
        };
        buf.clear();
        err.encode(&mut buf);
        assert_eq!(ErrPacket::parse(&buf).unwrap(), err);
        let eof = EofPacket {
            warnings: 0,
            status: 0x22,
        };
        buf.clear();
        eof.encode(&mut buf);
        assert!(EofPacket::is_eof(&buf));
        assert_eq!(EofPacket::parse(&buf).unwrap(), eof);
        let switch = AuthSwitchRequest {
            plugin: "mysql_native_password".into(),
            data: Bytes::from_static(b"0123456789abcdefghij\0"),
        };
        buf.clear();
        switch.encode(&mut buf);
        assert_eq!(AuthSwitchRequest::parse(&buf).unwrap(), switch);
    }

    #[test]
    fn refuses_the_old_password_switch() {
        let err = AuthSwitchRequest::parse(&[0xFE]).unwrap_err();
        assert!(err.to_string().contains("mysql_old_password"), "{err}");
    }
}
