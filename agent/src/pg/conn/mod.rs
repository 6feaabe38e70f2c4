//! Our own PostgreSQL replication connection: upstream tokio-postgres cannot do
//! physical replication, so this speaks the protocol with `postgres_protocol`'s
//! codecs over tokio, with TLS through rustls.
//!
//! - `options`: connection options from a `postgres://` URL.
//! - `transport`: TCP, then TLS as `sslmode` says (with [`crate::tls`]).
//! - `wire`: cancel-safe message framing.
//! - `auth`: startup and authentication (trust, password, md5, SCRAM-SHA-256).
//! - `connection`: connecting with explained errors, and the replication commands.
//! - `streaming`: START_REPLICATION and the CopyBoth stream.
//! - `basebackup`: BASE_BACKUP and its COPY OUT stream.
//! - `error`: the one error type, [`PgError`].

mod auth;
mod basebackup;
mod connection;
mod error;
mod options;
mod streaming;
mod transport;
mod wire;

pub use basebackup::{BackupEnd, BackupStart, BaseBackupStream, TablespaceInfo};
pub use connection::{ReplicationConnection, SlotInfo, SystemInfo};
pub use error::PgError;
pub use options::{ConnectOptions, SslMode};
pub use streaming::ReplicationEvent;
