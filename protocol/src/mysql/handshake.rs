//! The connection phase: the server's greeting (HandshakeV10), and the client's SSLRequest and
//! HandshakeResponse41.

use std::fmt;
use std::ops::{BitAnd, BitOr};

use bytes::{BufMut, BytesMut};

use super::lenenc::{ParseError, Reader, put_lenenc_bytes, put_lenenc_int};
use super::response::{ERR_HEADER, ErrPacket};

/// Capability flags: the low 32 bits are the protocol's, the high 32 MariaDB's extensions.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CapabilityFlags(u64);

impl CapabilityFlags {
    /// `CLIENT_LONG_PASSWORD`; MariaDB reads it as `CLIENT_MYSQL`: when a side clears it, that
    /// side sends MariaDB's extended capabilities in the reserved bytes.
    pub const CLIENT_MYSQL: CapabilityFlags = CapabilityFlags(1);
    /// `CLIENT_LONG_FLAG`: all column flags.
    pub const LONG_FLAG: CapabilityFlags = CapabilityFlags(1 << 2);
    /// `CLIENT_CONNECT_WITH_DB`: the response names a default schema.
    pub const CONNECT_WITH_DB: CapabilityFlags = CapabilityFlags(1 << 3);
    /// `CLIENT_COMPRESS`: compressed protocol (not supported here).
    pub const COMPRESS: CapabilityFlags = CapabilityFlags(1 << 5);
    /// `CLIENT_LOCAL_FILES`: LOAD DATA LOCAL (never requested here).
    pub const LOCAL_FILES: CapabilityFlags = CapabilityFlags(1 << 7);
    /// `CLIENT_PROTOCOL_41`: the 4.1 protocol, with SQL states in errors.
    pub const PROTOCOL_41: CapabilityFlags = CapabilityFlags(1 << 9);
    /// `CLIENT_SSL`: the server can switch to TLS; the client asks with an SSLRequest.
    pub const SSL: CapabilityFlags = CapabilityFlags(1 << 11);
    /// `CLIENT_TRANSACTIONS`: status flags carry transaction state.
    pub const TRANSACTIONS: CapabilityFlags = CapabilityFlags(1 << 13);
    /// `CLIENT_SECURE_CONNECTION` (`CLIENT_RESERVED2`): the 20-byte scramble.
    pub const SECURE_CONNECTION: CapabilityFlags = CapabilityFlags(1 << 15);
    /// `CLIENT_MULTI_STATEMENTS`.
    pub const MULTI_STATEMENTS: CapabilityFlags = CapabilityFlags(1 << 16);
    /// `CLIENT_MULTI_RESULTS`.
    pub const MULTI_RESULTS: CapabilityFlags = CapabilityFlags(1 << 17);
    /// `CLIENT_PLUGIN_AUTH`: authentication plugins and auth switch.
    pub const PLUGIN_AUTH: CapabilityFlags = CapabilityFlags(1 << 19);
    /// `CLIENT_CONNECT_ATTRS`: the response carries key/value connection attributes.
    pub const CONNECT_ATTRS: CapabilityFlags = CapabilityFlags(1 << 20);
    /// `CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA`: the auth response is a length-encoded string.
    pub const PLUGIN_AUTH_LENENC_CLIENT_DATA: CapabilityFlags = CapabilityFlags(1 << 21);
    /// `CLIENT_SESSION_TRACK`: OK packets carry session-state changes (not requested here).
    pub const SESSION_TRACK: CapabilityFlags = CapabilityFlags(1 << 23);
    /// `CLIENT_DEPRECATE_EOF`: result sets end with an OK (0xFE) instead of EOF packets.
    pub const DEPRECATE_EOF: CapabilityFlags = CapabilityFlags(1 << 24);
    /// `MARIADB_CLIENT_PROGRESS`: progress reports inside ERR packets (never requested here).
    pub const MARIADB_PROGRESS: CapabilityFlags = CapabilityFlags(1 << 32);

    /// Wraps raw flags (MariaDB's extended ones in the high 32 bits).
    pub const fn from_bits(bits: u64) -> CapabilityFlags {
        CapabilityFlags(bits)
    }

    /// The raw flags.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every flag of `other` is set here.
    pub const fn contains(self, other: CapabilityFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags without those of `other`.
    pub const fn without(self, other: CapabilityFlags) -> CapabilityFlags {
        CapabilityFlags(self.0 & !other.0)
    }

    /// The low 32 bits, as sent in the standard fields.
    fn low(self) -> u32 {
        self.0 as u32
    }

    /// MariaDB's extended capabilities, sent only when `CLIENT_MYSQL` is clear.
    fn mariadb_extended(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl BitOr for CapabilityFlags {
    type Output = CapabilityFlags;
    fn bitor(self, rhs: CapabilityFlags) -> CapabilityFlags {
        CapabilityFlags(self.0 | rhs.0)
    }
}

impl BitAnd for CapabilityFlags {
    type Output = CapabilityFlags;
    fn bitand(self, rhs: CapabilityFlags) -> CapabilityFlags {
        CapabilityFlags(self.0 & rhs.0)
    }
}

impl fmt::Debug for CapabilityFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CapabilityFlags(0x{:016X})", self.0)
    }
}

/// The server's greeting (`Protocol::HandshakeV10`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeV10 {
    /// The server's version string; MariaDB prefixes it with `5.5.5-` for old clients.
    pub server_version: String,
    /// The connection (thread) id, as in `KILL <id>`.
    pub connection_id: u32,
    /// The authentication nonce: parts 1 and 2 joined, without the trailing NUL (20 bytes).
    pub nonce: Vec<u8>,
    /// The server's capabilities, MariaDB's extended ones in the high 32 bits when present.
    pub capabilities: CapabilityFlags,
    /// The server's default collation id.
    pub charset: u8,
    /// The server status flags.
    pub status: u16,
    /// The server's default authentication plugin, empty if it named none.
    pub auth_plugin: String,
}

/// What a server sends first: a greeting, or an error such as "Too many connections".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Greeting {
    /// The server is ready for the login.
    Handshake(HandshakeV10),
    /// The server refused the connection before the login.
    Refused(ErrPacket),
}

impl Greeting {
    /// Parses the first payload a server sends.
    pub fn parse(payload: &[u8]) -> Result<Greeting, ParseError> {
        if payload.first() == Some(&ERR_HEADER) {
            return ErrPacket::parse(payload).map(Greeting::Refused);
        }
        HandshakeV10::parse(payload).map(Greeting::Handshake)
    }
}

impl HandshakeV10 {
    /// Parses a HandshakeV10 payload (first byte 10).
    pub fn parse(payload: &[u8]) -> Result<HandshakeV10, ParseError> {
        let mut r = Reader::new("HandshakeV10", payload);
        let version = r.u8("protocol version")?;
        if version != 10 {
            return Err(r.malformed(format!(
                "protocol version {version}: only version 10 (MySQL 4.1 and later, all MariaDB) \
                 is supported"
            )));
        }
        let server_version =
            String::from_utf8_lossy(r.nul_terminated("server version")?).into_owned();
        let connection_id = r.u32("connection id")?;
        let mut nonce = r.bytes("auth-plugin-data-part-1", 8)?.to_vec();
        r.u8("filler")?;
        let mut low = u32::from(r.u16("capability flags")?);
        let (mut charset, mut status, mut auth_data_len, mut extended) = (0, 0, 0, 0);
        if !r.is_empty() {
            charset = r.u8("character set")?;
            status = r.u16("status flags")?;
            low |= u32::from(r.u16("upper capability flags")?) << 16;
            auth_data_len = r.u8("auth-plugin-data length")?;
            let reserved = r.bytes("reserved bytes", 10)?;
            if let Some(&[a, b, c, d]) = reserved.get(6..10) {
                extended = u32::from_le_bytes([a, b, c, d]);
            }
        }
        // MariaDB puts its extended capabilities in the reserved bytes, and says so by
        // clearing CLIENT_MYSQL; from MySQL those bytes are zero and meaningless.
        let mut capabilities = CapabilityFlags(u64::from(low));
        if !capabilities.contains(CapabilityFlags::CLIENT_MYSQL) {
            capabilities = CapabilityFlags(capabilities.0 | u64::from(extended) << 32);
        }
        if capabilities.contains(CapabilityFlags::SECURE_CONNECTION) {
            let len = usize::from(auth_data_len).saturating_sub(8).max(13);
            let part2 = r.bytes("auth-plugin-data-part-2", len.min(r.remaining()))?;
            nonce.extend_from_slice(part2.strip_suffix(&[0]).unwrap_or(part2));
        }
        let auth_plugin = if capabilities.contains(CapabilityFlags::PLUGIN_AUTH) {
            // Some MySQL 5.5 releases omit the final NUL.
            String::from_utf8_lossy(r.nul_terminated_or_rest()).into_owned()
        } else {
            String::new()
        };
        Ok(HandshakeV10 {
            server_version,
            connection_id,
            nonce,
            capabilities,
            charset,
            status,
            auth_plugin,
        })
    }

    /// Appends the greeting payload, as a server sends it with sequence id 0.
    ///
    /// The nonce is sent as MySQL lays it out: 8 bytes, a filler, the rest and a NUL. It
    /// must hold no NUL itself (the client reads part 2 up to one); servers use 20 printable
    /// bytes. MariaDB's extended capabilities go in the reserved bytes when `CLIENT_MYSQL`
    /// is clear.
    pub fn encode(&self, buf: &mut BytesMut) {
        let caps = self.capabilities;
        buf.put_u8(10);
        buf.put_slice(self.server_version.as_bytes());
        buf.put_u8(0);
        buf.put_u32_le(self.connection_id);
        let (part1, part2) = self.nonce.split_at(self.nonce.len().min(8));
        buf.put_slice(part1);
        buf.put_bytes(0, 8 - part1.len());
        buf.put_u8(0);
        buf.put_u16_le(caps.low() as u16);
        buf.put_u8(self.charset);
        buf.put_u16_le(self.status);
        buf.put_u16_le((caps.low() >> 16) as u16);
        let auth_data_len = if caps.contains(CapabilityFlags::PLUGIN_AUTH) {
            u8::try_from(self.nonce.len() + 1).unwrap_or(u8::MAX)
        } else {
            0
        };
        buf.put_u8(auth_data_len);
        buf.put_bytes(0, 6);
        let extended = if caps.contains(CapabilityFlags::CLIENT_MYSQL) {
            0
        } else {
            caps.mariadb_extended()
        };
        buf.put_u32_le(extended);
        if caps.contains(CapabilityFlags::SECURE_CONNECTION) {
            // At least 12 bytes and the NUL, which is what a reader skips.
            buf.put_slice(part2);
            buf.put_bytes(0, 12usize.saturating_sub(part2.len()) + 1);
        }
        if caps.contains(CapabilityFlags::PLUGIN_AUTH) {
            buf.put_slice(self.auth_plugin.as_bytes());
            buf.put_u8(0);
        }
    }

    /// Whether the server is MariaDB (its version string says so).
    pub fn is_mariadb(&self) -> bool {
        self.server_version.contains("MariaDB")
    }

    /// The version without MariaDB's `5.5.5-` compatibility prefix, such as `10.11.19-MariaDB`.
    pub fn version(&self) -> &str {
        if self.is_mariadb() {
            self.server_version
                .strip_prefix("5.5.5-")
                .unwrap_or(&self.server_version)
        } else {
            &self.server_version
        }
    }
}

/// The capabilities this client can use at all; the session uses those the server also has.
pub const CLIENT_CAPABILITIES: CapabilityFlags = CapabilityFlags(
    CapabilityFlags::CLIENT_MYSQL.0
        | CapabilityFlags::LONG_FLAG.0
        | CapabilityFlags::PROTOCOL_41.0
        | CapabilityFlags::TRANSACTIONS.0
        | CapabilityFlags::SECURE_CONNECTION.0
        | CapabilityFlags::MULTI_RESULTS.0
        | CapabilityFlags::PLUGIN_AUTH.0
        | CapabilityFlags::PLUGIN_AUTH_LENENC_CLIENT_DATA.0
        | CapabilityFlags::DEPRECATE_EOF.0,
);

/// The capabilities a server must have for this client to log in.
pub const REQUIRED_SERVER_CAPABILITIES: CapabilityFlags = CapabilityFlags(
    CapabilityFlags::PROTOCOL_41.0
        | CapabilityFlags::SECURE_CONNECTION.0
        | CapabilityFlags::PLUGIN_AUTH.0,
);

/// The request to switch the connection to TLS (`Protocol::SSLRequest`), sent before the
/// TLS handshake with sequence id 1; the HandshakeResponse41 then follows over TLS with id 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SslRequest {
    /// The client's capabilities; must include [`CapabilityFlags::SSL`].
    pub capabilities: CapabilityFlags,
    /// The largest packet the client wants to receive.
    pub max_packet_size: u32,
    /// The client's collation id.
    pub charset: u8,
}

impl SslRequest {
    /// Appends the SSLRequest payload (32 bytes).
    pub fn encode(&self, buf: &mut BytesMut) {
        put_fixed_prefix(buf, self.capabilities, self.max_packet_size, self.charset);
    }
}

/// The fixed 32 bytes that SSLRequest and HandshakeResponse41 share.
fn put_fixed_prefix(buf: &mut BytesMut, caps: CapabilityFlags, max_packet: u32, charset: u8) {
    buf.put_u32_le(caps.low());
    buf.put_u32_le(max_packet);
    buf.put_u8(charset);
    buf.put_bytes(0, 19);
    // MariaDB reads its extended capabilities here when CLIENT_MYSQL is clear.
    let extended = if caps.contains(CapabilityFlags::CLIENT_MYSQL) {
        0
    } else {
        caps.mariadb_extended()
    };
    buf.put_u32_le(extended);
}

/// The client's login (`Protocol::HandshakeResponse41`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeResponse41 {
    /// The client's capabilities. `CONNECT_WITH_DB` and `CONNECT_ATTRS` are set or cleared
    /// by [`HandshakeResponse41::encode`] to match `database` and `connect_attrs`.
    pub capabilities: CapabilityFlags,
    /// The largest packet the client wants to receive.
    pub max_packet_size: u32,
    /// The client's collation id.
    pub charset: u8,
    /// The user name.
    pub user: String,
    /// The first authentication response of `auth_plugin` (such as a scramble).
    pub auth_response: Vec<u8>,
    /// The default schema, if any.
    pub database: Option<String>,
    /// The plugin that produced `auth_response`.
    pub auth_plugin: String,
    /// Connection attributes (`performance_schema.session_connect_attrs`), if any.
    pub connect_attrs: Vec<(String, String)>,
}

impl HandshakeResponse41 {
    /// The capabilities this response is sent with, after matching the optional fields.
    pub fn effective_capabilities(&self) -> CapabilityFlags {
        let mut caps = self
            .capabilities
            .without(CapabilityFlags::CONNECT_WITH_DB)
            .without(CapabilityFlags::CONNECT_ATTRS);
        if self.database.is_some() {
            caps = caps | CapabilityFlags::CONNECT_WITH_DB;
        }
        if !self.connect_attrs.is_empty() {
            caps = caps | CapabilityFlags::CONNECT_ATTRS;
        }
        caps
    }

    /// Parses a HandshakeResponse41 payload, as a server receives it; `capabilities` holds
    /// the flags as sent (MariaDB's extended ones in the high bits when `CLIENT_MYSQL` is
    /// clear). An SSLRequest (32 bytes with `CLIENT_SSL`) is refused: it is not a login.
    pub fn parse(payload: &[u8]) -> Result<HandshakeResponse41, ParseError> {
        let mut r = Reader::new("HandshakeResponse41", payload);
        let low = r.u32("capability flags")?;
        let max_packet_size = r.u32("max packet size")?;
        let charset = r.u8("character set")?;
        r.bytes("filler", 19)?;
        let extended = r.u32("extended capability flags")?;
        let mut capabilities = CapabilityFlags(u64::from(low));
        if !capabilities.contains(CapabilityFlags::CLIENT_MYSQL) {
            capabilities = CapabilityFlags(capabilities.0 | u64::from(extended) << 32);
        }
        if r.is_empty() && capabilities.contains(CapabilityFlags::SSL) {
            return Err(
                r.malformed("it is an SSLRequest, and this server offers no TLS".to_owned())
            );
        }
        let user = String::from_utf8_lossy(r.nul_terminated("user name")?).into_owned();
        let auth_response =
            if capabilities.contains(CapabilityFlags::PLUGIN_AUTH_LENENC_CLIENT_DATA) {
                r.lenenc_bytes("auth response")?.to_vec()
            } else if capabilities.contains(CapabilityFlags::SECURE_CONNECTION) {
                let len = r.u8("auth response length")?;
                r.bytes("auth response", usize::from(len))?.to_vec()
            } else {
                r.nul_terminated("auth response")?.to_vec()
            };
        let database = if capabilities.contains(CapabilityFlags::CONNECT_WITH_DB) {
            Some(String::from_utf8_lossy(r.nul_terminated("database")?).into_owned())
        } else {
            None
        };
        let auth_plugin = if capabilities.contains(CapabilityFlags::PLUGIN_AUTH) {
            String::from_utf8_lossy(r.nul_terminated_or_rest()).into_owned()
        } else {
            String::new()
        };
        let mut connect_attrs = Vec::new();
        if capabilities.contains(CapabilityFlags::CONNECT_ATTRS) && !r.is_empty() {
            let attrs = r.lenenc_bytes("connection attributes")?;
            let mut a = Reader::new("connection attributes", attrs);
            while !a.is_empty() {
                let key = String::from_utf8_lossy(a.lenenc_bytes("attribute name")?).into_owned();
                let value =
                    String::from_utf8_lossy(a.lenenc_bytes("attribute value")?).into_owned();
                connect_attrs.push((key, value));
            }
        }
        Ok(HandshakeResponse41 {
            capabilities,
            max_packet_size,
            charset,
            user,
            auth_response,
            database,
            auth_plugin,
            connect_attrs,
        })
    }

    /// Appends the HandshakeResponse41 payload.
    pub fn encode(&self, buf: &mut BytesMut) {
        let caps = self.effective_capabilities();
        put_fixed_prefix(buf, caps, self.max_packet_size, self.charset);
        buf.put_slice(self.user.as_bytes());
        buf.put_u8(0);
        if caps.contains(CapabilityFlags::PLUGIN_AUTH_LENENC_CLIENT_DATA) {
            put_lenenc_bytes(buf, &self.auth_response);
        } else {
            // Without the lenenc flag the length is one byte; every scramble fits.
            let len = self.auth_response.len().min(255);
            buf.put_u8(len as u8);
            buf.put_slice(self.auth_response.get(..len).unwrap_or_default());
        }
        if let Some(db) = &self.database {
            buf.put_slice(db.as_bytes());
            buf.put_u8(0);
        }
        if caps.contains(CapabilityFlags::PLUGIN_AUTH) {
            buf.put_slice(self.auth_plugin.as_bytes());
            buf.put_u8(0);
        }
        if caps.contains(CapabilityFlags::CONNECT_ATTRS) {
            let mut attrs = BytesMut::new();
            for (key, value) in &self.connect_attrs {
                put_lenenc_bytes(&mut attrs, key.as_bytes());
                put_lenenc_bytes(&mut attrs, value.as_bytes());
            }
            put_lenenc_int(buf, attrs.len() as u64);
            buf.put_slice(&attrs);
        }
    }
}
