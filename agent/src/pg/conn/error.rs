//! `PgError`: one opaque error type with predicates, printed as one line that
//! names where it happened, the cause and the fix.

use std::fmt;
use std::io;

use fallible_iterator::FallibleIterator as _;
use logship_protocol::pg::replication::ReplicationMessageError;
use postgres_protocol::message::backend::ErrorFields;

/// An error from a PostgreSQL connection; never contains the password.
#[derive(Debug)]
pub struct PgError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    during: During,
    kind: Kind,
}

/// What the connection was doing when the error happened; the first half of the message.
#[derive(Debug, Clone)]
pub(crate) enum During {
    Url,
    Connect { addr: String },
    Command { addr: String, command: String },
    Stream { addr: String },
}

/// The cause, with its fix.
#[derive(Debug)]
pub(crate) enum Kind {
    Url(String),
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
    MissingPassword {
        user: String,
    },
    UnsupportedAuth(String),
    Scram(io::Error),
    Server {
        db: Box<DbError>,
        explain: Option<Explain>,
    },
    Protocol(String),
    Replication(ReplicationMessageError),
    InvalidName {
        what: &'static str,
        name: String,
    },
    LogicalSlot {
        slot: String,
    },
}

/// A known server error, re-explained with its fix.
#[derive(Debug, Clone)]
pub(crate) enum Explain {
    PasswordFailed { user: String },
    NoReplicationRole { user: String },
    NoHbaEntry { message: String, line: String },
    WalLevelMinimal,
    NoWalSenders,
    WalSendersInUse { max: String },
}

/// The fields of a server `ErrorResponse` that we keep.
#[derive(Debug, Clone, Default)]
pub(crate) struct DbError {
    pub(crate) severity: String,
    pub(crate) code: String,
    pub(crate) message: String,
    pub(crate) detail: Option<String>,
    pub(crate) hint: Option<String>,
}

impl DbError {
    /// Collects the fields of an ErrorResponse or NoticeResponse body.
    pub(crate) fn parse(fields: &mut ErrorFields<'_>) -> io::Result<DbError> {
        let mut db = DbError::default();
        while let Some(field) = fields.next()? {
            let value = String::from_utf8_lossy(field.value_bytes()).into_owned();
            match field.type_() {
                b'V' => db.severity = value,
                b'S' if db.severity.is_empty() => db.severity = value,
                b'C' => db.code = value,
                b'M' => db.message = value,
                b'D' => db.detail = Some(value),
                b'H' => db.hint = Some(value),
                _ => {}
            }
        }
        Ok(db)
    }
}

impl PgError {
    pub(crate) fn new(during: During, kind: Kind) -> PgError {
        PgError(Box::new(Inner { during, kind }))
    }

    pub(crate) fn url(reason: String) -> PgError {
        PgError::new(During::Url, Kind::Url(reason))
    }

    /// The SQLSTATE of a server error, e.g. `28P01`.
    pub fn code(&self) -> Option<&str> {
        match &self.0.kind {
            Kind::Server { db, .. } => Some(&db.code),
            _ => None,
        }
    }

    /// Whether reconnecting later may succeed: network and connection failures, a server
    /// starting up or shutting down, or all walsender slots busy.
    pub fn is_transient(&self) -> bool {
        match &self.0.kind {
            Kind::Resolve { .. }
            | Kind::Unreachable(_)
            | Kind::ConnectTimeout
            | Kind::Io(_)
            | Kind::Closed => true,
            Kind::Server { db, explain } => match explain {
                Some(Explain::WalSendersInUse { .. }) => true,
                Some(_) => false,
                None => {
                    db.code.starts_with("08")
                        || matches!(db.code.as_str(), "57P01" | "57P02" | "57P03" | "53300")
                }
            },
            _ => false,
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0.kind {
            Kind::Resolve { source, .. } => Some(source),
            Kind::Unreachable(e) | Kind::Io(e) | Kind::Scram(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.during, self.0.kind)
    }
}

impl fmt::Display for During {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            During::Url => f.write_str("invalid postgres URL"),
            During::Connect { addr } => write!(f, "cannot connect to postgres at {addr}"),
            During::Command { addr, command } => {
                write!(f, "{command} failed on postgres at {addr}")
            }
            During::Stream { addr } => {
                write!(f, "replication stream from postgres at {addr} failed")
            }
        }
    }
}

const CHECK_ADDR: &str = "check the host and port in the source URL and that PostgreSQL is running";

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Url(reason) | Kind::Tls(reason) => f.write_str(reason),
            Kind::Replication(e) => e.fmt(f),
            Kind::Resolve { host, source } => write!(
                f,
                "cannot resolve host \"{host}\": {source} (check the host in the source URL)"
            ),
            Kind::Unreachable(e) => match e.kind() {
                io::ErrorKind::ConnectionRefused => write!(f, "connection refused ({CHECK_ADDR})"),
                _ => write!(f, "{} ({CHECK_ADDR})", one_line(e)),
            },
            Kind::ConnectTimeout => write!(f, "timed out after 10s ({CHECK_ADDR})"),
            Kind::Io(e) => write!(
                f,
                "connection lost: {} (reconnect; if it repeats, check the network and the server log)",
                one_line(e)
            ),
            Kind::Closed => f.write_str(
                "the server closed the connection (reconnect; if it repeats, check the server log)",
            ),
            Kind::TlsRefused { sslmode } => write!(
                f,
                "the server does not accept TLS but sslmode={sslmode} requires it \
                 (set ssl = on in postgresql.conf, or use sslmode=prefer or disable)"
            ),
            Kind::MissingPassword { user } => write!(
                f,
                "the server asks for a password for user \"{user}\" but none was given \
                 (set it in the source URL, password_file or PGPASSWORD)"
            ),
            Kind::UnsupportedAuth(method) => write!(
                f,
                "the server asks for {method} authentication, which logship does not support \
                 (use scram-sha-256, md5, password or trust in pg_hba.conf)"
            ),
            Kind::Scram(e) => write!(
                f,
                "SCRAM authentication failed: {} (the server could not prove it knows the password; \
                 check that the source URL points at the right server)",
                one_line(e)
            ),
            Kind::Server {
                explain: Some(explain),
                ..
            } => explain.fmt(f),
            Kind::Server { db, explain: None } => {
                write!(f, "{} (SQLSTATE {}", db.message.replace('\n', " "), db.code)?;
                if let Some(detail) = &db.detail {
                    write!(f, "; {}", detail.replace('\n', " "))?;
                }
                match &db.hint {
                    Some(hint) => write!(f, "; {})", hint.replace('\n', " ")),
                    None => f.write_str("; see the PostgreSQL server log)"),
                }
            }
            Kind::Protocol(what) => write!(
                f,
                "unexpected reply from the server: {what} (check that the server is PostgreSQL 15 or newer; reconnect)"
            ),
            Kind::InvalidName { what, name } => write!(
                f,
                "invalid {what} \"{name}\" (use 1 to 63 lowercase letters, digits and underscores)"
            ),
            Kind::LogicalSlot { slot } => write!(
                f,
                "replication slot \"{slot}\" is a logical slot \
                 (set the source's slot to a physical slot, or to a free name for logship to create)"
            ),
        }
    }
}

impl fmt::Display for Explain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const RESTART: &str = "in postgresql.conf, then restart PostgreSQL";
        match self {
            Explain::PasswordFailed { user } => write!(
                f,
                "password authentication failed for user \"{user}\" \
                 (check the password in the source URL, password_file or PGPASSWORD)"
            ),
            Explain::NoReplicationRole { user } => write!(
                f,
                "role \"{user}\" lacks the REPLICATION attribute \
                 (run ALTER ROLE {user} REPLICATION as a superuser)"
            ),
            Explain::NoHbaEntry { message, line } => write!(
                f,
                "{message} (add \"{line}\" to pg_hba.conf, then reload PostgreSQL)"
            ),
            Explain::WalLevelMinimal => write!(
                f,
                "wal_level is minimal, which cannot stream WAL \
                 (set wal_level = replica and max_wal_senders > 0 {RESTART})"
            ),
            Explain::NoWalSenders => write!(
                f,
                "max_wal_senders is 0, so the server accepts no replication connections \
                 (set max_wal_senders > 0 {RESTART})"
            ),
            Explain::WalSendersInUse { max } => write!(
                f,
                "all max_wal_senders ({max}) are in use \
                 (raise max_wal_senders {RESTART}, or stop unused replication clients)"
            ),
        }
    }
}

/// An I/O error's text without line breaks, so messages stay one line.
fn one_line(e: &io::Error) -> String {
    e.to_string().replace('\n', " ")
}
