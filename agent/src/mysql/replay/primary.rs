//! [`ArchivePrimary`]: a MariaDB primary on 127.0.0.1 whose binlog is the archive.
//!
//! It serves the restored server's replication IO thread, one connection at a time (the
//! IO thread reconnects after a network error, and asks again from where it is): the
//! login with a password only this replay knows, the setup queries ([`session`]), then
//! `COM_BINLOG_DUMP` as MariaDB's `mysql_binlog_send` answers it. The stream ends at the
//! stop position: nothing past it is ever sent, so the restored server cannot apply a
//! transaction beyond the target; the connection then stays open, with heartbeats if the
//! replica asked for them, until the replica or the replay closes it.
//!
//! [`session`]: super::session

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use logship_protocol::mysql::auth::check_native_password;
use logship_protocol::mysql::command::BINLOG_SEND_ANNOTATE_ROWS_EVENT;
use logship_protocol::mysql::dump::ER_MASTER_FATAL_ERROR_READING_BINLOG;
use logship_protocol::mysql::serve::{fake_rotate, format_description_for_dump, heartbeat};
use logship_protocol::mysql::{
    AuthSwitchRequest, BinlogDump, BinlogFileName, BinlogPos, CapabilityFlags, ChecksumAlg,
    Command, ErrPacket, EventType, HandshakeResponse41, HandshakeV10, OkPacket, Packet,
    PacketDecoder, encode_dump_event, encode_packet,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::archive::ServerArchive;
use super::error::ReplayError;
use super::session::{PrimaryFacts, ReplicaSession, Reply, STATUS_AUTOCOMMIT};

/// The authentication plugin offered (the replica's client speaks it in every version).
const NATIVE_PASSWORD: &str = "mysql_native_password";
/// `ER_ACCESS_DENIED_ERROR`.
const ER_ACCESS_DENIED_ERROR: u16 = 1045;
/// `ER_UNKNOWN_COM_ERROR`.
const ER_UNKNOWN_COM_ERROR: u16 = 1047;
/// `ER_MALFORMED_PACKET`.
const ER_MALFORMED_PACKET: u16 = 1835;
/// `MARIA_SLAVE_CAPABILITY_GTID`: the replica understands every MariaDB event as it is in
/// the binlog (MariaDB 10.0 and later), so nothing needs rewriting for it.
const MARIA_SLAVE_CAPABILITY_GTID: u32 = 4;
/// `utf8mb4_general_ci`.
const UTF8MB4_GENERAL_CI: u8 = 45;
/// The largest command a replica sends is a short statement; this is generous.
const MAX_COMMAND: usize = 1 << 20;
/// Events are written out once this much is buffered (and always before waiting).
const WRITE_BATCH: usize = 1 << 20;

/// The capabilities offered: what a replica's client uses, without TLS or compression
/// (the connection never leaves this machine).
const CAPABILITIES: CapabilityFlags = CapabilityFlags::from_bits(
    CapabilityFlags::CLIENT_MYSQL.bits()
        | CapabilityFlags::LONG_FLAG.bits()
        | CapabilityFlags::CONNECT_WITH_DB.bits()
        | CapabilityFlags::PROTOCOL_41.bits()
        | CapabilityFlags::TRANSACTIONS.bits()
        | CapabilityFlags::SECURE_CONNECTION.bits()
        | CapabilityFlags::MULTI_RESULTS.bits()
        | CapabilityFlags::PLUGIN_AUTH.bits()
        | CapabilityFlags::CONNECT_ATTRS.bits()
        | CapabilityFlags::PLUGIN_AUTH_LENENC_CLIENT_DATA.bits()
        | CapabilityFlags::DEPRECATE_EOF.bits(),
);

/// How an [`ArchivePrimary`] presents itself and where it stops.
#[derive(Clone)]
pub struct PrimaryConfig {
    /// The original server's `server_id` (its version and checksum come from the archived
    /// FORMAT_DESCRIPTION).
    pub server_id: u32,
    /// The original server's `gtid_domain_id`.
    pub domain_id: u32,
    /// The user the replica logs in as.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The position after the last event to send.
    pub stop: BinlogPos,
}

// By hand, so that the password never reaches a log line.
impl std::fmt::Debug for PrimaryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrimaryConfig")
            .field("server_id", &self.server_id)
            .field("domain_id", &self.domain_id)
            .field("user", &self.user)
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

/// What a primary has sent so far, readable while it runs.
#[derive(Debug, Default)]
pub struct Progress {
    bytes: AtomicU64,
    events: AtomicU64,
}

impl Progress {
    /// Bytes of archived events sent (what the archive holds; fake events not counted).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Archived events sent.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    fn sent(&self, bytes: usize) {
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.events.fetch_add(1, Ordering::Relaxed);
    }
}

/// A primary serving one server's archive on 127.0.0.1, until [`ArchivePrimary::stop`].
pub struct ArchivePrimary {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), ReplayError>>>,
    progress: Arc<Progress>,
}

/// Everything a connection needs, shared by all of them.
struct Context {
    archive: ServerArchive,
    config: PrimaryConfig,
    facts: PrimaryFacts,
    progress: Arc<Progress>,
}

impl ArchivePrimary {
    /// Reads the FORMAT_DESCRIPTION of `first` (the file the replay starts in) for the
    /// version and checksum to present, binds 127.0.0.1 on a free port and starts serving.
    pub async fn start(
        archive: ServerArchive,
        first: &BinlogFileName,
        config: PrimaryConfig,
    ) -> Result<ArchivePrimary, ReplayError> {
        let opened = archive.open(first, BinlogPos::FIRST_EVENT).await?;
        let (_, format) =
            opened
                .format_description()
                .ok_or_else(|| ReplayError::NoFormatDescription {
                    key: first.to_string(),
                })?;
        let facts = PrimaryFacts {
            server_id: config.server_id,
            domain_id: config.domain_id,
            version: format.server_version.clone(),
            checksum: format.checksum.unwrap_or(ChecksumAlg::Off),
        };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(ReplayError::Listen)?;
        let addr = listener.local_addr().map_err(ReplayError::Listen)?;
        let progress = Arc::new(Progress::default());
        let shutdown = CancellationToken::new();
        let context = Arc::new(Context {
            archive,
            config,
            facts,
            progress: progress.clone(),
        });
        let task = tokio::spawn(accept_loop(listener, context, shutdown.clone()));
        tracing::info!(%addr, "replay primary listening");
        Ok(ArchivePrimary {
            addr,
            shutdown,
            task: Some(task),
            progress,
        })
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// What it has sent so far.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Resolves when the primary fails (a damaged archive, a bad stop position); it never
    /// resolves while the primary works, and resolves at once after it ended.
    pub async fn failure(&mut self) -> ReplayError {
        loop {
            let Some(task) = self.task.as_mut() else {
                std::future::pending::<()>().await;
                continue;
            };
            let result = task.await;
            self.task = None;
            match result {
                Ok(Err(err)) => return err,
                Ok(Ok(())) => {}
                Err(join) => {
                    return ReplayError::Listen(std::io::Error::other(format!(
                        "the replay primary ended unexpectedly: {join}"
                    )));
                }
            }
        }
    }

    /// Closes every connection and the listener; returns what it sent, or its failure.
    pub async fn stop(mut self) -> Result<u64, ReplayError> {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(result) => result?,
                Err(join) => {
                    return Err(ReplayError::Listen(std::io::Error::other(format!(
                        "the replay primary ended unexpectedly: {join}"
                    ))));
                }
            }
        }
        Ok(self.progress.bytes())
    }
}

impl Drop for ArchivePrimary {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Serves connections one after the other until `shutdown`, or a failure of the archive.
async fn accept_loop(
    listener: TcpListener,
    context: Arc<Context>,
    shutdown: CancellationToken,
) -> Result<(), ReplayError> {
    let mut connection_id = 0u32;
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(%err, "replay primary: accept failed");
                continue;
            }
        };
        connection_id = connection_id.wrapping_add(1);
        let _ = stream.set_nodelay(true);
        let mut conn = Connection::new(stream);
        let served = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            served = conn.serve(&context, connection_id) => served,
        };
        match served {
            Ok(()) => tracing::info!(%peer, "replica connection closed"),
            Err(End::Network(err)) => tracing::warn!(%peer, %err, "replica connection lost"),
            Err(End::Refused(why)) => tracing::warn!(%peer, why, "replica connection refused"),
            Err(End::Fatal(err)) => {
                // The replica got the reason as an ERR; the replay reports it from here.
                conn.flush_quietly().await;
                return Err(err);
            }
        }
    }
}

/// Why a connection ended.
enum End {
    /// The socket failed or closed.
    Network(std::io::Error),
    /// The peer was refused (login, protocol); the primary goes on.
    Refused(String),
    /// The archive cannot be served; the replay fails.
    Fatal(ReplayError),
}

impl From<std::io::Error> for End {
    fn from(err: std::io::Error) -> End {
        End::Network(err)
    }
}

/// One replica connection: framing over the socket.
struct Connection {
    stream: TcpStream,
    read_buf: BytesMut,
    write_buf: BytesMut,
    decoder: PacketDecoder,
}

impl Connection {
    fn new(stream: TcpStream) -> Connection {
        Connection {
            stream,
            read_buf: BytesMut::with_capacity(4096),
            write_buf: BytesMut::new(),
            decoder: PacketDecoder::new(MAX_COMMAND),
        }
    }

    /// The next packet; `None` when the peer closed the connection.
    async fn read(&mut self) -> Result<Option<Packet>, End> {
        loop {
            match self.decoder.decode(&mut self.read_buf) {
                Ok(Some(packet)) => return Ok(Some(packet)),
                Ok(None) => {}
                Err(err) => return Err(End::Refused(err.to_string())),
            }
            if self.stream.read_buf(&mut self.read_buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    async fn flush(&mut self) -> Result<(), End> {
        if !self.write_buf.is_empty() {
            self.stream.write_all(&self.write_buf).await?;
            self.write_buf.clear();
        }
        Ok(())
    }

    async fn flush_quietly(&mut self) {
        let _ = self.flush().await;
    }

    async fn send(&mut self, seq: u8, payload: &[u8]) -> Result<u8, End> {
        let next = encode_packet(seq, payload, &mut self.write_buf);
        self.flush().await?;
        Ok(next)
    }

    async fn send_err(&mut self, seq: u8, code: u16, message: &str) -> Result<u8, End> {
        let mut payload = BytesMut::new();
        ErrPacket {
            code,
            sql_state: Some(
                if code == ER_ACCESS_DENIED_ERROR {
                    "28000"
                } else {
                    "HY000"
                }
                .into(),
            ),
            message: message.to_owned(),
        }
        .encode(&mut payload);
        self.send(seq, &payload).await
    }

    async fn send_ok(&mut self, seq: u8) -> Result<u8, End> {
        let mut payload = BytesMut::new();
        OkPacket {
            affected_rows: 0,
            last_insert_id: 0,
            status: STATUS_AUTOCOMMIT,
            warnings: 0,
            info: bytes::Bytes::new(),
        }
        .encode(&mut payload);
        self.send(seq, &payload).await
    }

    /// The whole connection: login, commands, and the dump.
    async fn serve(&mut self, context: &Context, connection_id: u32) -> Result<(), End> {
        let Some(capabilities) = self.login(context, connection_id).await? else {
            return Ok(());
        };
        let mut session = ReplicaSession::default();
        loop {
            let Some(packet) = self.read().await? else {
                return Ok(());
            };
            let seq = packet.next_seq();
            match Command::parse(&packet.payload) {
                Ok(Some(Command::Query(sql))) => {
                    tracing::debug!(sql, "replica query");
                    let now = jiff::Timestamp::now().as_second();
                    match session.answer(&sql, &context.facts, now) {
                        Reply::Ok => {
                            self.send_ok(seq).await?;
                        }
                        Reply::Err(err) => {
                            tracing::debug!(%err, sql, "replica query refused");
                            self.send_err(seq, err.code, &err.message).await?;
                        }
                        Reply::Rows(rows) => {
                            rows.encode(capabilities, seq, &mut self.write_buf);
                            self.flush().await?;
                        }
                    }
                }
                Ok(Some(Command::Ping)) => {
                    self.send_ok(seq).await?;
                }
                Ok(Some(Command::Quit)) => return Ok(()),
                Ok(Some(Command::RegisterSlave(register))) => {
                    tracing::info!(replica_server_id = register.server_id, "replica registered");
                    self.send_ok(seq).await?;
                }
                Ok(Some(Command::BinlogDump(dump))) => {
                    return Dump::new(context, &session, &dump, seq).run(self).await;
                }
                Ok(Some(Command::BinlogDumpGtid(_)) | None) => {
                    let code = packet.payload.first().copied().unwrap_or_default();
                    self.send_err(seq, ER_UNKNOWN_COM_ERROR, "Unknown command")
                        .await?;
                    tracing::debug!(code, "replica command refused");
                }
                Err(err) => {
                    self.send_err(
                        seq,
                        ER_MALFORMED_PACKET,
                        &format!("Malformed packet: {err}"),
                    )
                    .await?;
                }
            }
        }
    }

    /// The greeting and the login check; the session's capabilities, or `None` when the
    /// peer left.
    async fn login(
        &mut self,
        context: &Context,
        connection_id: u32,
    ) -> Result<Option<CapabilityFlags>, End> {
        let nonce: Vec<u8> = rand::random::<[u8; 20]>()
            .iter()
            .map(|b| 0x21 + b % 94)
            .collect();
        let mut payload = BytesMut::new();
        HandshakeV10 {
            // MariaDB's prefix, which its clients strip, so that old MySQL clients read 5.5.5.
            server_version: format!("5.5.5-{}", context.facts.version),
            connection_id,
            nonce: nonce.clone(),
            capabilities: CAPABILITIES,
            charset: UTF8MB4_GENERAL_CI,
            status: STATUS_AUTOCOMMIT,
            auth_plugin: NATIVE_PASSWORD.into(),
        }
        .encode(&mut payload);
        self.send(0, &payload).await?;
        let Some(packet) = self.read().await? else {
            return Ok(None);
        };
        let response = match HandshakeResponse41::parse(&packet.payload) {
            Ok(response) => response,
            Err(err) => {
                self.send_err(packet.next_seq(), ER_MALFORMED_PACKET, &err.to_string())
                    .await?;
                return Err(End::Refused(format!("bad login packet: {err}")));
            }
        };
        let mut seq = packet.next_seq();
        let mut answer = response.auth_response.clone();
        if response.auth_plugin != NATIVE_PASSWORD {
            let mut switch = BytesMut::new();
            let mut data = nonce.clone();
            data.push(0);
            AuthSwitchRequest {
                plugin: NATIVE_PASSWORD.into(),
                data: data.into(),
            }
            .encode(&mut switch);
            self.send(seq, &switch).await?;
            let Some(reply) = self.read().await? else {
                return Ok(None);
            };
            seq = reply.next_seq();
            answer = reply.payload.to_vec();
        }
        let user_ok = response.user == context.config.user;
        if !user_ok || !check_native_password(&nonce, context.config.password.as_bytes(), &answer) {
            let message = format!(
                "Access denied for user '{}'@'127.0.0.1' (using password: {})",
                response.user,
                if answer.is_empty() { "NO" } else { "YES" }
            );
            self.send_err(seq, ER_ACCESS_DENIED_ERROR, &message).await?;
            return Err(End::Refused(message));
        }
        self.send_ok(seq).await?;
        Ok(Some(response.capabilities & CAPABILITIES))
    }
}

/// One `COM_BINLOG_DUMP`, answered as MariaDB's `mysql_binlog_send` does.
struct Dump<'a> {
    context: &'a Context,
    request: BinlogDump,
    annotate: bool,
    capability: u32,
    /// What the replica said it checks; the fake ROTATE uses it until a file's own.
    announced: Option<ChecksumAlg>,
    heartbeat: Option<Duration>,
    /// The checksum of the file the stream stopped in, for heartbeats.
    heartbeat_checksum: ChecksumAlg,
    seq: u8,
}

impl<'a> Dump<'a> {
    fn new(
        context: &'a Context,
        session: &ReplicaSession,
        request: &BinlogDump,
        seq: u8,
    ) -> Dump<'a> {
        Dump {
            context,
            request: request.clone(),
            annotate: request.flags & BINLOG_SEND_ANNOTATE_ROWS_EVENT != 0,
            capability: session.capability(),
            announced: session.checksum(),
            heartbeat: session.heartbeat_period(),
            heartbeat_checksum: ChecksumAlg::Off,
            seq,
        }
    }

    /// Streams, then waits at the stop; a failure to read the archive goes to the replica
    /// as ERR 1236 (which stops its IO thread) and ends the replay.
    async fn run(mut self, conn: &mut Connection) -> Result<(), End> {
        let stop = self.context.config.stop.clone();
        tracing::info!(
            file = self.request.file,
            position = self.request.position,
            replica_server_id = self.request.server_id,
            %stop,
            "replica asks for the binlog"
        );
        if self.capability < MARIA_SLAVE_CAPABILITY_GTID {
            let message = format!(
                "this primary serves MariaDB replicas of 10.0 and later \
                 (@mariadb_slave_capability {MARIA_SLAVE_CAPABILITY_GTID}); the replica announced {}",
                self.capability
            );
            conn.send_err(self.seq, ER_MASTER_FATAL_ERROR_READING_BINLOG, &message)
                .await?;
            return Err(End::Refused(message));
        }
        match self.stream(conn).await {
            Ok(()) => self.wait_at_stop(conn).await,
            Err(End::Fatal(err)) => {
                let seq = self.seq;
                conn.send_err(seq, ER_MASTER_FATAL_ERROR_READING_BINLOG, &err.to_string())
                    .await?;
                Err(End::Fatal(err))
            }
            Err(other) => Err(other),
        }
    }

    /// Where the dump starts, checked as the server checks it.
    fn start(&self) -> Result<BinlogPos, String> {
        let archive = &self.context.archive;
        let file = if self.request.file.is_empty() {
            archive.first_file()
        } else {
            BinlogFileName::new(&self.request.file).ok()
        };
        let Some(file) = file.filter(|f| archive.objects(f).is_ok()) else {
            return Err("Could not find first log file name in binary log index file".into());
        };
        let position = u64::from(self.request.position);
        if position < BinlogPos::FIRST_EVENT {
            return Err("Client requested master to start replication from position < 4".into());
        }
        if archive.durable_len(&file).unwrap_or(0) < position {
            return Err(
                "Client requested master to start replication from position > file size".into(),
            );
        }
        let start = BinlogPos::new(file, position);
        match start.partial_cmp(&self.context.config.stop) {
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal) => Ok(start),
            _ => Err(format!(
                "Client requested master to start replication at {start}, past the end of this \
                 replay at {}",
                self.context.config.stop
            )),
        }
    }

    fn write_event(&mut self, conn: &mut Connection, event: &[u8]) {
        self.seq = encode_dump_event(self.seq, event, &mut conn.write_buf);
    }

    async fn write_batch(&mut self, conn: &mut Connection) -> Result<(), End> {
        if conn.write_buf.len() >= WRITE_BATCH {
            conn.flush().await?;
        }
        Ok(())
    }

    /// Sends from the requested position to the stop.
    async fn stream(&mut self, conn: &mut Connection) -> Result<(), End> {
        let start = match self.start() {
            Ok(start) => start,
            Err(message) => {
                conn.send_err(self.seq, ER_MASTER_FATAL_ERROR_READING_BINLOG, &message)
                    .await?;
                return Err(End::Refused(message));
            }
        };
        let archive = self.context.archive.clone();
        let stop = self.context.config.stop.clone();
        let server_id = self.context.config.server_id;
        let (mut file, mut position) = (start.file().clone(), start.offset());
        let mut checksum = self.announced.unwrap_or(ChecksumAlg::Off);
        let mut first = true;
        loop {
            let rotate = fake_rotate(server_id, file.as_str(), position, checksum);
            self.write_event(conn, &rotate);
            let mut events = archive.open(&file, position).await.map_err(End::Fatal)?;
            let Some((fde, format)) = events.format_description().cloned() else {
                return Err(End::Fatal(ReplayError::NotArchived {
                    server: archive.server(),
                    file,
                }));
            };
            if format.checksum == Some(ChecksumAlg::Crc32) && self.announced.is_none() {
                let message = "Slave can not handle replication events with the checksum that \
                               master is configured to log";
                conn.send_err(self.seq, ER_MASTER_FATAL_ERROR_READING_BINLOG, message)
                    .await?;
                return Err(End::Refused(message.into()));
            }
            checksum = format.checksum.unwrap_or(ChecksumAlg::Off);
            let resumed = first && position > BinlogPos::FIRST_EVENT;
            let sent_fde = format_description_for_dump(fde.raw(), resumed, format.checksum)
                .map_err(|err| {
                    End::Fatal(ReplayError::NoFormatDescription {
                        key: format!("{file}: {err}"),
                    })
                })?;
            self.write_event(conn, &sent_fde);
            first = false;
            let in_stop_file = file == *stop.file();
            if in_stop_file && (position == stop.offset() || fde.end_offset() == stop.offset()) {
                break;
            }
            let mut reached = false;
            while let Some(event) = events.next().await.map_err(End::Fatal)? {
                if in_stop_file && event.end_offset() > stop.offset() {
                    return Err(End::Fatal(ReplayError::NotABoundary {
                        file: file.clone(),
                        pos: stop.offset(),
                        start: event.offset(),
                        end: event.end_offset(),
                    }));
                }
                let skip = event.event_type() == EventType::ANNOTATE_ROWS && !self.annotate;
                if !skip {
                    self.write_event(conn, event.raw());
                    self.context.progress.sent(event.raw().len());
                    self.write_batch(conn).await?;
                }
                if in_stop_file && event.end_offset() == stop.offset() {
                    reached = true;
                    break;
                }
            }
            if reached {
                break;
            }
            if in_stop_file {
                return Err(End::Fatal(ReplayError::BeyondArchive {
                    server: archive.server(),
                    file,
                    durable: events.position(),
                    wanted: stop.offset(),
                }));
            }
            file = archive.next_file(&file).map_err(End::Fatal)?;
            position = BinlogPos::FIRST_EVENT;
        }
        conn.flush().await?;
        tracing::info!(%stop, bytes = self.context.progress.bytes(), "replay primary reached the stop position");
        self.heartbeat_checksum = checksum;
        Ok(())
    }

    /// Sends nothing more but heartbeats, until the replica closes the connection.
    async fn wait_at_stop(&mut self, conn: &mut Connection) -> Result<(), End> {
        let stop = self.context.config.stop.clone();
        let mut scratch = [0u8; 256];
        let period = self.heartbeat.unwrap_or(Duration::MAX);
        loop {
            let sleep = tokio::time::sleep(period.min(Duration::from_secs(24 * 3600)));
            tokio::select! {
                read = conn.stream.read(&mut scratch) => {
                    // A replica sends nothing during a dump: bytes or the end both end it.
                    read?;
                    return Ok(());
                }
                () = sleep, if self.heartbeat.is_some() => {
                    let offset = u32::try_from(stop.offset()).unwrap_or(u32::MAX);
                    let beat = heartbeat(self.context.config.server_id, stop.file().as_str(), offset, self.heartbeat_checksum);
                    self.write_event(conn, &beat);
                    conn.flush().await?;
                }
            }
        }
    }
}
