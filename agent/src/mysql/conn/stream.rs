//! The binlog dump: the session variables a dump needs, COM_REGISTER_SLAVE, COM_BINLOG_DUMP
//! (or COM_BINLOG_DUMP_GTID), and the stream of events with semi-sync acknowledgements.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use logship_protocol::mysql::command::BINLOG_DUMP_NON_BLOCK;
use logship_protocol::mysql::command::BINLOG_SEND_ANNOTATE_ROWS_EVENT;
use logship_protocol::mysql::dump::SEMI_SYNC_MAGIC;
use logship_protocol::mysql::{
    BinlogDump, BinlogDumpGtid, BinlogPos, ChecksumAlg, Command, DumpErrorKind, DumpPacket,
    GtidPos, GtidSet, RegisterSlave, SemiSyncAck,
};

use super::connection::{MysqlConnection, Session};
use super::error::{During, ER_SLAVE_SAME_ID, ER_SPECIFIC_ACCESS_DENIED_ERROR, Kind, MysqlError};

/// MariaDB's `MARIA_SLAVE_CAPABILITY_GTID`: the replica understands GTID events and the
/// binlog checkpoint events, so the server sends them as they are.
const MARIADB_SLAVE_CAPABILITY: u32 = 4;

/// Where a dump starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpStart {
    /// A file and the offset of an event in it (4 for its first event): what archiving uses.
    Position(BinlogPos),
    /// MariaDB: after the last GTID per domain (`@slave_connect_state`), for continuing
    /// on a promoted server after a failover.
    MariadbGtid(GtidPos),
    /// MySQL: the first transaction not in this executed set (COM_BINLOG_DUMP_GTID).
    MysqlGtid(GtidSet),
}

impl fmt::Display for DumpStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpStart::Position(pos) => pos.fmt(f),
            DumpStart::MariadbGtid(pos) => write!(f, "GTID position {pos}"),
            DumpStart::MysqlGtid(set) => write!(f, "after GTID set {set}"),
        }
    }
}

/// What to announce and ask for when starting a dump.
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// This replica's server id: unique among the server's replicas, never 0.
    pub server_id: u32,
    /// Where to start.
    pub start: DumpStart,
    /// How often the server sends a heartbeat when it has nothing else; zero for never.
    pub heartbeat: Duration,
    /// Announce semi-sync (`@rpl_semi_sync_slave = 1`): events may then ask for an ack.
    pub semi_sync: bool,
    /// MariaDB: also send ANNOTATE_ROWS events (the statement behind row events). Without
    /// them the server leaves those events out, and the stream has holes where the file
    /// has them: an archive that must be byte-exact needs this on.
    pub annotate_rows: bool,
    /// End with [`DumpItem::Eof`] at the end of the binlog instead of waiting for more.
    pub non_blocking: bool,
    /// The checksum to announce; `None` announces the server's own (`@@global.binlog_checksum`).
    pub checksum: Option<ChecksumAlg>,
    /// The host name shown in `SHOW SLAVE HOSTS`; another replica registered with the same
    /// server_id under a different name makes the dump refuse to start.
    pub report_host: String,
}

impl DumpOptions {
    /// A blocking dump from `start` with a 30 s heartbeat, ANNOTATE_ROWS events (so the
    /// stream has every byte of the file), no semi-sync, and this machine's name.
    pub fn new(server_id: u32, start: DumpStart) -> DumpOptions {
        DumpOptions {
            server_id,
            start,
            heartbeat: Duration::from_secs(30),
            semi_sync: false,
            annotate_rows: true,
            non_blocking: false,
            checksum: None,
            report_host: local_host_name(),
        }
    }
}

/// One item of the dump stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpItem {
    /// A binlog event, byte for byte (header, body, checksum), including the stream-only
    /// ones (fake ROTATE, re-sent FORMAT_DESCRIPTION, heartbeats).
    Event {
        /// The event's bytes: a slice of the received packet, not a copy.
        event: Bytes,
        /// Whether the server waits for a semi-sync acknowledgement of this event.
        ack_requested: bool,
    },
    /// The end of the binlog (only with [`DumpOptions::non_blocking`]).
    Eof,
}

/// A running dump: read it with [`BinlogStream::next`], acknowledge with [`BinlogStream::ack`].
pub struct BinlogStream {
    session: Session,
    server_id: u32,
    from: String,
    /// Semi-sync was announced; whether the server adds the header is learnt from the first event.
    semi_sync_requested: bool,
    semi_sync: Option<bool>,
    ended: bool,
}

impl MysqlConnection {
    /// Refuses a server_id another replica (by another report_host) is registered with,
    /// before anything is written for the dump; [`start_dump`](MysqlConnection::start_dump)
    /// checks again. Passes when the user may not run `SHOW SLAVE HOSTS`.
    pub async fn check_server_id(&mut self, opts: &DumpOptions) -> Result<(), MysqlError> {
        self.session.check_server_id(opts).await
    }

    /// Starts a binlog dump; the connection becomes the stream.
    ///
    /// Refuses server_id 0, and a server_id another replica is registered with (when the
    /// user may run `SHOW SLAVE HOSTS`: MariaDB 10.5.2+ needs REPLICATION MASTER ADMIN).
    pub async fn start_dump(self, opts: &DumpOptions) -> Result<BinlogStream, MysqlError> {
        if opts.server_id == 0 {
            return Err(MysqlError::invalid_option(
                "server_id 0 cannot replicate: the server treats it as a one-off reader \
                 (set server_id in the source config to a unique value from 1 to 4294967295)"
                    .to_string(),
            ));
        }
        let checksum = opts.checksum;
        let mut session = self.session;
        session.check_server_id(opts).await?;
        let announce = match checksum {
            None => "@@global.binlog_checksum".to_string(),
            Some(ChecksumAlg::Crc32) => "'CRC32'".to_string(),
            Some(ChecksumAlg::Off) => "'NONE'".to_string(),
        };
        let mut statements = vec![
            format!("SET @master_binlog_checksum = {announce}"),
            // Nanoseconds, as CHANGE MASTER's seconds are stored.
            format!(
                "SET @master_heartbeat_period = {}",
                u64::try_from(opts.heartbeat.as_nanos()).unwrap_or(u64::MAX)
            ),
        ];
        if session.is_mariadb {
            statements.push(format!(
                "SET @mariadb_slave_capability = {MARIADB_SLAVE_CAPABILITY}"
            ));
        }
        if opts.semi_sync {
            statements.push("SET @rpl_semi_sync_slave = 1".to_string());
        }
        if let DumpStart::MariadbGtid(pos) = &opts.start {
            if !session.is_mariadb {
                return Err(MysqlError::invalid_option(
                    "a MariaDB GTID position cannot start a dump from MySQL (start from a file position or a MySQL GTID set)"
                        .to_string(),
                ));
            }
            statements.push(format!("SET @slave_connect_state = '{pos}'"));
            statements.push("SET @slave_gtid_strict_mode = 0".to_string());
            statements.push("SET @slave_gtid_ignore_duplicates = 0".to_string());
        }
        for sql in &statements {
            let label = sql.split(" =").next().unwrap_or("SET").to_string();
            session.query_raw(sql, &label).await?;
        }

        let register = Command::RegisterSlave(RegisterSlave {
            server_id: opts.server_id,
            host: opts.report_host.chars().take(60).collect(),
            user: String::new(),
            password: String::new(),
            port: 0,
            rank: 0,
            master_id: 0,
        });
        session.command_ok(&register, "COM_REGISTER_SLAVE").await?;

        let mut flags = 0;
        if opts.non_blocking {
            flags |= BINLOG_DUMP_NON_BLOCK;
        }
        let dump = match &opts.start {
            DumpStart::Position(pos) => {
                if session.is_mariadb && opts.annotate_rows {
                    flags |= BINLOG_SEND_ANNOTATE_ROWS_EVENT;
                }
                let position = u32::try_from(pos.offset()).map_err(|_| {
                    MysqlError::invalid_option(format!(
                        "cannot start a dump at {pos}: COM_BINLOG_DUMP takes offsets below 4 GiB \
                         (start from the file's beginning or by GTID)"
                    ))
                })?;
                Command::BinlogDump(BinlogDump {
                    position,
                    flags,
                    server_id: opts.server_id,
                    file: pos.file().to_string(),
                })
            }
            DumpStart::MariadbGtid(_) => Command::BinlogDump(BinlogDump {
                position: 4,
                flags,
                server_id: opts.server_id,
                file: String::new(),
            }),
            DumpStart::MysqlGtid(set) => {
                let mut encoded = Vec::with_capacity(set.encoded_len());
                set.encode(&mut encoded);
                Command::BinlogDumpGtid(BinlogDumpGtid {
                    flags,
                    server_id: opts.server_id,
                    file: String::new(),
                    position: 4,
                    encoded_gtid_set: Some(Bytes::from(encoded)),
                })
            }
        };
        let mut buf = BytesMut::new();
        dump.encode(&mut buf)
            .map_err(|e| session.error("COM_BINLOG_DUMP", Kind::Protocol(e.to_string())))?;
        session.wire.out().extend_from_slice(&buf);
        let from = opts.start.to_string();
        session.wire.flush().await.map_err(|kind| {
            MysqlError::new(
                During::Dump {
                    addr: session.addr.clone(),
                },
                kind,
            )
        })?;
        Ok(BinlogStream {
            session,
            server_id: opts.server_id,
            from,
            semi_sync_requested: opts.semi_sync,
            semi_sync: None,
            ended: false,
        })
    }
}

impl BinlogStream {
    /// The next event, the end of the binlog, or the error the server ended the dump with.
    ///
    /// Cancel-safe: dropping the future (in `tokio::select!`) loses no bytes.
    pub async fn next(&mut self) -> Result<DumpItem, MysqlError> {
        if self.ended {
            return Err(self.error(Kind::Protocol(
                "the dump already ended; reconnect to start another".into(),
            )));
        }
        let packet = self
            .session
            .wire
            .read()
            .await
            .map_err(|kind| self.error(kind))?;
        let payload = packet.payload;
        let semi_sync = match self.semi_sync {
            Some(on) => on,
            None if payload.first() == Some(&0) => {
                // The first event is the fake ROTATE, whose timestamp is 0: a 0xEF after the
                // status byte can only be the semi-sync header.
                let on = self.semi_sync_requested && payload.get(1) == Some(&SEMI_SYNC_MAGIC);
                self.semi_sync = Some(on);
                on
            }
            None => false,
        };
        match DumpPacket::parse(&payload, semi_sync) {
            Ok(DumpPacket::Event(e)) => Ok(DumpItem::Event {
                event: e.event,
                ack_requested: e.ack_requested,
            }),
            Ok(DumpPacket::Eof) => {
                self.ended = true;
                Ok(DumpItem::Eof)
            }
            Ok(DumpPacket::Error(error)) => {
                self.ended = true;
                if error.kind == DumpErrorKind::DuplicateServerId
                    || error.err.code == ER_SLAVE_SAME_ID
                {
                    return Err(self.error(Kind::DuplicateServerId {
                        server_id: self.server_id,
                        other: None,
                    }));
                }
                let from = self.from.clone();
                Err(self.error(Kind::Dump { error, from }))
            }
            Err(e) => Err(self.error(Kind::Protocol(e.to_string()))),
        }
    }

    /// Sends a semi-sync acknowledgement: the binlog is durable up to `pos` (an event's end).
    ///
    /// Send it only for what is durable in the store. Not cancel-safe: await it to the end.
    pub async fn ack(&mut self, pos: &BinlogPos) -> Result<(), MysqlError> {
        let ack = SemiSyncAck {
            file: pos.file().to_string(),
            position: pos.offset(),
        };
        let mut buf = BytesMut::new();
        ack.encode(&mut buf)
            .map_err(|e| self.error(Kind::Protocol(e.to_string())))?;
        self.session.wire.out().extend_from_slice(&buf);
        self.session
            .wire
            .flush()
            .await
            .map_err(|kind| self.error(kind))
    }

    /// Whether the server adds semi-sync headers (known after the first event).
    pub fn is_semi_sync(&self) -> Option<bool> {
        self.semi_sync
    }

    /// Where the dump started, as errors name it.
    pub fn start(&self) -> &str {
        &self.from
    }

    /// Closes the connection; the server ends the dump thread when it notices.
    pub async fn close(mut self) {
        self.session.wire.shutdown().await;
    }

    fn error(&self, kind: Kind) -> MysqlError {
        MysqlError::new(
            During::Dump {
                addr: self.session.addr.clone(),
            },
            kind,
        )
    }
}

impl Session {
    /// Refuses a server_id another replica (by another report_host) is registered with.
    async fn check_server_id(&mut self, opts: &DumpOptions) -> Result<(), MysqlError> {
        let sql = if self.is_mariadb
            || !super::connection::version_at_least(self.version(), (8, 0, 22))
        {
            "SHOW SLAVE HOSTS"
        } else {
            "SHOW REPLICAS"
        };
        let rows = match self.query_rows_named(sql).await {
            Ok(rows) => rows,
            Err(e) if e.code() == Some(ER_SPECIFIC_ACCESS_DENIED_ERROR) => {
                tracing::debug!(
                    "cannot list the server's replicas ({sql} needs REPLICATION MASTER ADMIN on \
                     MariaDB); relying on the server to drop a duplicate server_id"
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        for row in rows {
            let id = row.get("server_id").and_then(|v| v.parse::<u32>().ok());
            let host = row.get("host").cloned().unwrap_or_default();
            if id == Some(opts.server_id) && host != opts.report_host {
                let other = match row.get("port") {
                    Some(port) if port != "0" => format!("host \"{host}\", port {port}"),
                    _ => format!("host \"{host}\""),
                };
                return Err(MysqlError::new(
                    During::Check {
                        addr: self.addr.clone(),
                    },
                    Kind::DuplicateServerId {
                        server_id: opts.server_id,
                        other: Some(other),
                    },
                ));
            }
        }
        Ok(())
    }
}

/// This machine's host name, for `SHOW SLAVE HOSTS`; `logship` when it cannot be read.
fn local_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "logship".to_string())
}
