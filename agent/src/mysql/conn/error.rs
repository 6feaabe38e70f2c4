//! `MysqlError`: one opaque error type with predicates, printed as one line that
//! names where it happened, the cause and the fix.

use std::fmt;
use std::io;

use logship_protocol::mysql::{AuthError, DumpError, DumpErrorKind, ErrPacket, PacketError};

/// `ER_CON_COUNT_ERROR`: too many connections.
pub(crate) const ER_CON_COUNT_ERROR: u16 = 1040;
/// `ER_SERVER_SHUTDOWN`: the server is shutting down.
pub(crate) const ER_SERVER_SHUTDOWN: u16 = 1053;
/// `ER_ACCESS_DENIED_ERROR`: wrong user or password.
pub(crate) const ER_ACCESS_DENIED_ERROR: u16 = 1045;
/// `ER_HOST_NOT_PRIVILEGED`: no account for the client's host.
pub(crate) const ER_HOST_NOT_PRIVILEGED: u16 = 1130;
/// `ER_HOST_IS_BLOCKED`: too many connection errors from this host.
pub(crate) const ER_HOST_IS_BLOCKED: u16 = 1129;
/// `ER_SPECIFIC_ACCESS_DENIED_ERROR`: a statement needs a privilege the user lacks.
pub(crate) const ER_SPECIFIC_ACCESS_DENIED_ERROR: u16 = 1227;
/// `ER_PARSE_ERROR`: the server does not know the statement (such as a renamed SHOW).
pub(crate) const ER_PARSE_ERROR: u16 = 1064;
/// `ER_CONNECTION_KILLED`: the connection was killed.
pub(crate) const ER_CONNECTION_KILLED: u16 = 1927;
/// `ER_PLUGIN_IS_NOT_LOADED`: the user's authentication plugin is not loaded.
pub(crate) const ER_PLUGIN_IS_NOT_LOADED: u16 = 1524;
/// MariaDB `ER_SLAVE_SAME_ID`: a newer dump with this server_id replaced this one.
pub(crate) const ER_SLAVE_SAME_ID: u16 = 4052;

/// An error from a MySQL or MariaDB connection; never contains the password.
#[derive(Debug)]
pub struct MysqlError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    during: During,
    kind: Kind,
}

/// What the connection was doing when the error happened; the first half of the message.
#[derive(Debug, Clone)]
pub(crate) enum During {
    Url,
    Options,
    Connect { addr: String },
    Check { addr: String },
    Command { addr: String, command: String },
    Dump { addr: String },
}

/// The cause, with its fix.
#[derive(Debug)]
pub(crate) enum Kind {
    Url(String),
    InvalidOption(String),
    Resolve {
        host: String,
        source: io::Error,
    },
    Unreachable(io::Error),
    ConnectTimeout,
    Io(io::Error),
    Closed,
    TlsRefused {
        sslmode: String,
    },
    Tls(String),
    AccessDenied {
        message: String,
        with_password: bool,
    },
    HostNotAllowed {
        message: String,
        user: String,
    },
    UnsupportedPlugin {
        plugin: String,
        user: String,
    },
    PluginNotLoaded {
        message: String,
    },
    Auth(AuthError),
    Server(ErrPacket),
    Packet(PacketError),
    Protocol(String),
    BinlogOff,
    BadChecksum(String),
    MissingPrivilege {
        privilege: &'static str,
        account: String,
        needed_for: &'static str,
    },
    DuplicateServerId {
        server_id: u32,
        other: Option<String>,
    },
    Dump {
        error: DumpError,
        from: String,
    },
}

impl MysqlError {
    pub(crate) fn new(during: During, kind: Kind) -> MysqlError {
        MysqlError(Box::new(Inner { during, kind }))
    }

    pub(crate) fn url(reason: String) -> MysqlError {
        MysqlError::new(During::Url, Kind::Url(reason))
    }

    pub(crate) fn invalid_option(reason: String) -> MysqlError {
        MysqlError::new(During::Options, Kind::InvalidOption(reason))
    }

    /// The server's error number, e.g. 1045 or 1236, when the server sent the error.
    pub fn code(&self) -> Option<u16> {
        match &self.0.kind {
            Kind::Server(err) => Some(err.code),
            Kind::Auth(AuthError::Server(err)) => Some(err.code),
            Kind::Dump { error, .. } => Some(error.err.code),
            Kind::AccessDenied { .. } => Some(ER_ACCESS_DENIED_ERROR),
            Kind::HostNotAllowed { .. } => Some(ER_HOST_NOT_PRIVILEGED),
            Kind::PluginNotLoaded { .. } => Some(ER_PLUGIN_IS_NOT_LOADED),
            _ => None,
        }
    }

    /// What the server's text says went wrong with a dump, when it ended with an error.
    pub fn dump_error_kind(&self) -> Option<DumpErrorKind> {
        match &self.0.kind {
            Kind::Dump { error, .. } => Some(error.kind),
            Kind::DuplicateServerId { .. } => Some(DumpErrorKind::DuplicateServerId),
            _ => None,
        }
    }

    /// Whether reconnecting later (with backoff) may succeed: the network, timeouts, a
    /// closed or killed connection, a server starting, stopping or out of connections.
    pub fn is_transient(&self) -> bool {
        match &self.0.kind {
            Kind::Resolve { .. }
            | Kind::Unreachable(_)
            | Kind::ConnectTimeout
            | Kind::Io(_)
            | Kind::Closed
            | Kind::Packet(PacketError::SequenceGap { .. }) => true,
            Kind::Server(err) | Kind::Auth(AuthError::Server(err)) => matches!(
                err.code,
                ER_CON_COUNT_ERROR | ER_SERVER_SHUTDOWN | ER_CONNECTION_KILLED | ER_HOST_IS_BLOCKED
            ),
            Kind::Dump { error, .. } => matches!(error.kind, DumpErrorKind::Truncated),
            _ => false,
        }
    }

    /// Whether the configuration (URL, password, server settings, grants) must change
    /// before a connection can work: fail at once instead of retrying.
    pub fn is_config(&self) -> bool {
        match &self.0.kind {
            Kind::Url(_)
            | Kind::InvalidOption(_)
            | Kind::TlsRefused { .. }
            | Kind::Tls(_)
            | Kind::AccessDenied { .. }
            | Kind::HostNotAllowed { .. }
            | Kind::UnsupportedPlugin { .. }
            | Kind::PluginNotLoaded { .. }
            | Kind::BinlogOff
            | Kind::BadChecksum(_)
            | Kind::MissingPrivilege { .. }
            | Kind::DuplicateServerId { .. } => true,
            Kind::Auth(e) => !matches!(e, AuthError::Server(_)),
            Kind::Dump { error, .. } => matches!(
                error.kind,
                DumpErrorKind::BinlogDisabled
                    | DumpErrorKind::ChecksumNotAnnounced
                    | DumpErrorKind::EventTooLarge
            ),
            _ => false,
        }
    }

    /// Whether the binlog asked for is no longer on the server (purged); see [`purged_file`](MysqlError::purged_file).
    pub fn is_purged(&self) -> bool {
        matches!(
            &self.0.kind,
            Kind::Dump { error, .. }
                if matches!(error.kind, DumpErrorKind::LogFileNotFound | DumpErrorKind::GtidsPurged)
        )
    }

    /// Where the failed dump was to start (`binlog.000001:4`, or a GTID position) when it was purged.
    pub fn purged_file(&self) -> Option<&str> {
        match &self.0.kind {
            Kind::Dump { from, .. } if self.is_purged() => Some(from),
            _ => None,
        }
    }
}

impl std::error::Error for MysqlError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0.kind {
            Kind::Resolve { source, .. } => Some(source),
            Kind::Unreachable(e) | Kind::Io(e) => Some(e),
            Kind::Auth(e) => Some(e),
            Kind::Packet(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for MysqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.during, self.0.kind)
    }
}

impl fmt::Display for During {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            During::Url => f.write_str("invalid mysql URL"),
            During::Options => f.write_str("invalid mysql source options"),
            During::Connect { addr } => write!(f, "cannot connect to mysql at {addr}"),
            During::Check { addr } => write!(f, "cannot replicate from mysql at {addr}"),
            During::Command { addr, command } => {
                write!(f, "{command} failed on mysql at {addr}")
            }
            During::Dump { addr } => write!(f, "binlog dump from mysql at {addr} failed"),
        }
    }
}

const CHECK_ADDR: &str = "check the host and port in the source URL and that the server is running";
const SERVER_LOG: &str = "see the server's error log";

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Url(reason) | Kind::InvalidOption(reason) | Kind::Tls(reason) => {
                f.write_str(reason)
            }
            Kind::Resolve { host, source } => write!(
                f,
                "cannot resolve host \"{host}\": {} (check the host in the source URL)",
                one_line(&source.to_string())
            ),
            Kind::Unreachable(e) => match e.kind() {
                io::ErrorKind::ConnectionRefused => write!(f, "connection refused ({CHECK_ADDR})"),
                _ => write!(f, "{} ({CHECK_ADDR})", one_line(&e.to_string())),
            },
            Kind::ConnectTimeout => write!(f, "timed out after 10s ({CHECK_ADDR})"),
            Kind::Io(e) => write!(
                f,
                "connection lost: {} (reconnect; if it repeats, check the network and the server's error log)",
                one_line(&e.to_string())
            ),
            Kind::Closed => f.write_str(
                "the server closed the connection (reconnect; if it repeats, check the server's error log)",
            ),
            Kind::TlsRefused { sslmode } => write!(
                f,
                "the server does not offer TLS but sslmode={sslmode} requires it \
                 (configure ssl_cert and ssl_key on the server, or use sslmode=prefer or disable)"
            ),
            Kind::AccessDenied {
                message,
                with_password: true,
            } => write!(
                f,
                "{} (check the password in the source URL or MYSQL_PWD)",
                one_line(message)
            ),
            Kind::AccessDenied {
                message,
                with_password: false,
            } => write!(
                f,
                "{} (no password was given: set it in the source URL, password_file or MYSQL_PWD)",
                one_line(message)
            ),
            Kind::HostNotAllowed { message, user } => write!(
                f,
                "{} (create the account for this host, e.g. CREATE USER '{user}'@'%' IDENTIFIED BY '…', or connect from a host it allows)",
                one_line(message)
            ),
            Kind::UnsupportedPlugin { plugin, user } => write!(
                f,
                "the server asks for authentication plugin {plugin}, which logship does not speak \
                 (use mysql_native_password, caching_sha2_password or ed25519 for '{user}', e.g. \
                 ALTER USER '{user}'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('…'))"
            ),
            Kind::PluginNotLoaded { message } => write!(
                f,
                "{} (load the plugin on the server, e.g. INSTALL SONAME 'auth_ed25519', or change the user's plugin)",
                one_line(message)
            ),
            Kind::Auth(AuthError::TlsUnavailable) => f.write_str(
                "the server does not offer TLS (configure ssl_cert and ssl_key on the server, or use sslmode=prefer or disable)",
            ),
            Kind::Auth(AuthError::CleartextWithoutTls { plugin }) => write!(
                f,
                "the server asks for {plugin}, which would send the password in the clear \
                 (use sslmode=require or stronger)"
            ),
            Kind::Auth(e) => write!(
                f,
                "login failed: {} (check the user's authentication plugin; reconnect)",
                one_line(&e.to_string())
            ),
            Kind::Server(err) => write!(
                f,
                "{} (ERROR {}; {SERVER_LOG})",
                one_line(&err.message),
                err.code
            ),
            Kind::Packet(e) => write!(f, "{}", one_line(&e.to_string())),
            Kind::Protocol(what) => write!(
                f,
                "unexpected reply from the server: {what} (check that it is MySQL 5.7+ or MariaDB 10.3+; reconnect)"
            ),
            Kind::BinlogOff => f.write_str(
                "binary logging is off (set log_bin in the server's configuration, then restart it)",
            ),
            Kind::BadChecksum(value) => write!(
                f,
                "binlog_checksum is {value}, which logship cannot verify \
                 (SET GLOBAL binlog_checksum = CRC32, or NONE, and persist it in the server's configuration)"
            ),
            Kind::MissingPrivilege {
                privilege,
                account,
                needed_for,
            } => write!(
                f,
                "user {account} lacks the {privilege} privilege, which {needed_for} needs \
                 (run GRANT {privilege} ON *.* TO {account} as an administrator)"
            ),
            Kind::DuplicateServerId {
                server_id,
                other: Some(host),
            } => write!(
                f,
                "another replica ({host}) is registered with server_id {server_id} \
                 (set server_id in the source config to a value no other replica or server uses)"
            ),
            Kind::DuplicateServerId {
                server_id,
                other: None,
            } => write!(
                f,
                "another replica connected with server_id {server_id} and the server dropped this one \
                 (set server_id in the source config to a value no other replica or server uses)"
            ),
            Kind::Dump { error, from } => {
                let text = one_line(&error.err.message);
                let code = error.err.code;
                match error.kind {
                    DumpErrorKind::LogFileNotFound => write!(
                        f,
                        "the binlog at {from} is no longer on the server: {text} (ERROR {code}; \
                         it was purged before it was archived: take a new base backup, and make the \
                         server keep binlogs longer, e.g. binlog_expire_logs_seconds)"
                    ),
                    DumpErrorKind::GtidsPurged | DumpErrorKind::GtidNotFound => write!(
                        f,
                        "the server cannot start a dump at {from}: {text} (ERROR {code}; the \
                         transactions after it are no longer in its binlogs: take a new base backup)"
                    ),
                    DumpErrorKind::ImpossiblePosition | DumpErrorKind::BogusData => write!(
                        f,
                        "the server cannot start a dump at {from}: {text} (ERROR {code}; the position \
                         is not the start of an event in that file: resume from an event boundary, \
                         e.g. the file's start at 4)"
                    ),
                    DumpErrorKind::EventTooLarge => write!(
                        f,
                        "{text} (ERROR {code}; raise max_allowed_packet on the server to at least the largest event)"
                    ),
                    DumpErrorKind::ChecksumNotAnnounced => write!(
                        f,
                        "{text} (ERROR {code}; report this as a logship bug: it must announce @master_binlog_checksum)"
                    ),
                    DumpErrorKind::BinlogDisabled => write!(
                        f,
                        "{text} (ERROR {code}; set log_bin in the server's configuration, then restart it)"
                    ),
                    _ => write!(f, "{text} (ERROR {code} at {from}; {SERVER_LOG})"),
                }
            }
        }
    }
}

/// Text without line breaks, so messages stay one line.
pub(crate) fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}
