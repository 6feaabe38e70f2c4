//! The replication connection against real PostgreSQL 15 servers: authentication,
//! TLS modes, explained failures, replication commands and WAL streaming.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use logship::pg::conn::{ConnectOptions, PgError, ReplicationConnection, ReplicationEvent};
use logship_protocol::pg::replication::{PgTimestamp, StandbyStatusUpdate};
use logship_protocol::pg::{Lsn, TimelineId, WalSegSize, xlog_file_name};
use logship_tests::pg::{PgAuth, PgOptions, PgServer};
use logship_tests::util::free_port;

fn opts(url: &str) -> ConnectOptions {
    ConnectOptions::from_url(url).unwrap()
}

async fn connect(url: &str) -> ReplicationConnection {
    match ReplicationConnection::connect(&opts(url)).await {
        Ok(conn) => conn,
        Err(e) => panic!("connect {url}: {e}"),
    }
}

async fn connect_err(url: &str) -> PgError {
    match ReplicationConnection::connect(&opts(url)).await {
        Ok(_) => panic!("connecting to {url} must fail"),
        Err(e) => e,
    }
}

fn conf(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn system_identifier(pg: &PgServer) -> u64 {
    pg.sql("SELECT system_identifier FROM pg_control_system()")
        .parse()
        .unwrap()
}

fn now() -> PgTimestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros();
    PgTimestamp::from_unix_micros(i64::try_from(micros).unwrap())
}

fn status(write: Lsn, flush: Lsn) -> StandbyStatusUpdate {
    StandbyStatusUpdate {
        write,
        flush,
        apply: flush,
        client_time: now(),
        reply_requested: false,
    }
}

async fn identify_with_password(auth: PgAuth) {
    let pg = PgServer::start_with(PgOptions {
        auth,
        ..Default::default()
    });
    pg.sql("CREATE ROLE repl WITH REPLICATION LOGIN PASSWORD 'secret'");
    let mut conn = connect(&pg.url("repl", Some("secret"))).await;
    let system = conn.identify_system().await.unwrap();
    assert_eq!(system.system_id, system_identifier(&pg));
    assert_eq!(system.timeline, TimelineId::FIRST);
    assert!(system.xlogpos.is_valid());
    assert!(
        conn.server_version().starts_with("15"),
        "{}",
        conn.server_version()
    );
    assert_eq!(conn.show("wal_level").await.unwrap(), "replica");
    assert_eq!(conn.wal_segment_size().await.unwrap(), WalSegSize::DEFAULT);
    conn.close().await;

    let err = connect_err(&pg.url("repl", Some("wrong"))).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to postgres at 127.0.0.1:{}: password authentication failed for user \"repl\" \
             (check the password in the source URL, password_file or PGPASSWORD)",
            pg.port()
        )
    );
    assert_eq!(err.code(), Some("28P01"));
    assert!(!err.is_transient());

    if std::env::var_os("PGPASSWORD").is_none() {
        let err = connect_err(&pg.url("repl", None)).await;
        assert_eq!(
            err.to_string(),
            format!(
                "cannot connect to postgres at 127.0.0.1:{}: the server asks for a password for user \"repl\" \
                 but none was given (set it in the source URL, password_file or PGPASSWORD)",
                pg.port()
            )
        );
    }
}

#[tokio::test]
async fn trust_identifies_the_system() {
    let pg = PgServer::start();
    let mut conn = connect(&pg.url("postgres", None)).await;
    let system = conn.identify_system().await.unwrap();
    assert_eq!(system.system_id, system_identifier(&pg));
    assert_eq!(system.timeline, TimelineId::FIRST);
    // Replication commands also answer through simple_query.
    let rows = conn.simple_query("IDENTIFY_SYSTEM").await.unwrap();
    assert_eq!(
        rows[0][0].as_deref(),
        Some(system.system_id.to_string().as_str())
    );
    conn.close().await;

    let mut sql = ReplicationConnection::connect_sql(&opts(&pg.url("postgres", None)))
        .await
        .unwrap();
    let rows = sql
        .simple_query("SELECT 1, NULL::text, 'two'")
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![vec![Some("1".to_string()), None, Some("two".to_string())]]
    );
    let err = sql.simple_query("SELECT nope").await.unwrap_err();
    assert_eq!(err.code(), Some("42703"));
    assert!(
        err.to_string().starts_with(&format!(
            "SELECT failed on postgres at 127.0.0.1:{}: column \"nope\" does not exist (SQLSTATE 42703",
            pg.port()
        )),
        "{err}"
    );
    // The session is still usable after an error.
    assert_eq!(sql.show("wal_level").await.unwrap(), "replica");
}

#[tokio::test]
async fn md5_identifies_the_system_and_rejects_a_wrong_password() {
    identify_with_password(PgAuth::Md5).await;
}

#[tokio::test]
async fn scram_identifies_the_system_and_rejects_a_wrong_password() {
    identify_with_password(PgAuth::Scram).await;
}

#[tokio::test]
async fn cleartext_password_authenticates() {
    let pg = PgServer::start_with(PgOptions {
        auth: PgAuth::Scram,
        ..Default::default()
    });
    pg.sql("CREATE ROLE repl WITH REPLICATION LOGIN PASSWORD 'secret'");
    pg.set_hba(
        "local all postgres trust\n\
         host replication all 127.0.0.1/32 password\n",
    );
    let mut conn = connect(&pg.url("repl", Some("secret"))).await;
    conn.identify_system().await.unwrap();
}

#[tokio::test]
async fn role_without_replication_is_explained() {
    let pg = PgServer::start();
    pg.sql("CREATE ROLE norepl LOGIN");
    let err = connect_err(&pg.url("norepl", None)).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to postgres at 127.0.0.1:{}: role \"norepl\" lacks the REPLICATION attribute \
             (run ALTER ROLE norepl REPLICATION as a superuser)",
            pg.port()
        )
    );
    assert_eq!(err.code(), Some("42501"));
}

#[tokio::test]
async fn missing_pg_hba_entry_names_the_line_to_add() {
    let pg = PgServer::start();
    pg.set_hba(
        "local all postgres trust\n\
         host all all 127.0.0.1/32 trust\n",
    );
    let err = connect_err(&format!("{}?sslmode=disable", pg.url("postgres", None))).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to postgres at 127.0.0.1:{}: no pg_hba.conf entry for replication connection \
             from host \"127.0.0.1\", user \"postgres\", no encryption \
             (add \"host replication postgres 127.0.0.1/32 scram-sha-256\" to pg_hba.conf, then reload PostgreSQL)",
            pg.port()
        )
    );
    assert_eq!(err.code(), Some("28000"));
}

#[tokio::test]
async fn max_wal_senders_zero_is_explained() {
    let pg = PgServer::start_with(PgOptions {
        conf: conf(&[("max_wal_senders", "0")]),
        ..Default::default()
    });
    let err = connect_err(&pg.url("postgres", None)).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to postgres at 127.0.0.1:{}: max_wal_senders is 0, so the server accepts \
             no replication connections (set max_wal_senders > 0 in postgresql.conf, then restart PostgreSQL)",
            pg.port()
        )
    );
    assert_eq!(err.code(), Some("53300"));
    assert!(!err.is_transient());
}

#[tokio::test]
async fn wal_level_minimal_is_explained() {
    let pg = PgServer::start_with(PgOptions {
        conf: conf(&[
            ("wal_level", "minimal"),
            ("max_wal_senders", "0"),
            ("max_replication_slots", "0"),
        ]),
        ..Default::default()
    });
    let err = connect_err(&pg.url("postgres", None)).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to postgres at 127.0.0.1:{}: wal_level is minimal, which cannot stream WAL \
             (set wal_level = replica and max_wal_senders > 0 in postgresql.conf, then restart PostgreSQL)",
            pg.port()
        )
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn all_wal_senders_in_use_is_transient() {
    let pg = PgServer::start_with(PgOptions {
        conf: conf(&[("max_wal_senders", "1")]),
        ..Default::default()
    });
    let _holder = connect(&pg.url("postgres", None)).await;
    let err = connect_err(&pg.url("postgres", None)).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to postgres at 127.0.0.1:{}: all max_wal_senders (1) are in use \
             (raise max_wal_senders in postgresql.conf, then restart PostgreSQL, or stop unused replication clients)",
            pg.port()
        )
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn unreachable_port_is_transient() {
    let port = free_port();
    let err = connect_err(&format!("postgres://repl@127.0.0.1:{port}")).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to postgres at 127.0.0.1:{port}: connection refused \
             (check the host and port in the source URL and that PostgreSQL is running)"
        )
    );
    assert!(err.is_transient());
    assert_eq!(err.code(), None);
}

/// Whether the SQL session runs over TLS, as the server sees it.
async fn server_sees_tls(url: &str) -> bool {
    let mut conn = match ReplicationConnection::connect_sql(&opts(url)).await {
        Ok(conn) => conn,
        Err(e) => panic!("connect_sql {url}: {e}"),
    };
    let rows = conn
        .simple_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .await
        .unwrap();
    rows[0][0].as_deref() == Some("t")
}

#[tokio::test]
async fn sslmodes_against_a_tls_server() {
    let pg = PgServer::start_with(PgOptions {
        tls: true,
        // A second loopback address that the certificate does not name.
        conf: conf(&[("listen_addresses", "127.0.0.1,127.0.0.2")]),
        ..Default::default()
    });
    let ca = pg.ca_cert_path().unwrap().display().to_string();
    let port = pg.port();
    let url =
        |host: &str, query: &str| format!("postgres://postgres@{host}:{port}/postgres?{query}");

    assert!(!server_sees_tls(&url("127.0.0.1", "sslmode=disable")).await);
    assert!(server_sees_tls(&url("127.0.0.1", "sslmode=prefer")).await);
    assert!(server_sees_tls(&url("127.0.0.1", "sslmode=require")).await);
    let verify_ca = format!("sslmode=verify-ca&sslrootcert={ca}");
    let verify_full = format!("sslmode=verify-full&sslrootcert={ca}");
    assert!(server_sees_tls(&url("127.0.0.1", &verify_ca)).await);
    assert!(server_sees_tls(&url("127.0.0.1", &verify_full)).await);
    assert!(server_sees_tls(&url("localhost", &verify_full)).await);
    // verify-ca skips the host name check.
    assert!(server_sees_tls(&url("127.0.0.2", &verify_ca)).await);

    // Replication sessions go over TLS too.
    let mut conn = connect(&url("127.0.0.1", &verify_full)).await;
    assert_eq!(
        conn.identify_system().await.unwrap().system_id,
        system_identifier(&pg)
    );

    let err = connect_err(&url("127.0.0.2", &verify_full)).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to postgres at 127.0.0.2:{port}: the server certificate is not valid for host \"127.0.0.2\" \
             (connect with a host name the certificate lists, or use sslmode=verify-ca to skip the host name check)"
        )
    );
    assert!(!err.is_transient());

    // Another server's CA did not sign this certificate.
    let other = PgServer::start_with(PgOptions {
        tls: true,
        ..Default::default()
    });
    let other_ca = other.ca_cert_path().unwrap().display().to_string();
    let err = connect_err(&url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={other_ca}"),
    ))
    .await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to postgres at 127.0.0.1:{port}: the server certificate is not signed by a CA \
             in sslrootcert {other_ca} (set sslrootcert to the CA that signed the server certificate, \
             or use sslmode=require to skip verification)"
        )
    );

    let missing = format!("{}/missing.crt", pg.dir().display());
    let err = connect_err(&url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={missing}"),
    ))
    .await
    .to_string();
    let prefix = format!(
        "cannot connect to postgres at 127.0.0.1:{port}: cannot read sslrootcert {missing}: "
    );
    assert!(err.starts_with(&prefix), "{err}");
    assert!(
        err.ends_with(
            "(set sslrootcert in the source URL to the CA certificate file, or use sslmode=require)"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn require_fails_against_a_plain_server() {
    let pg = PgServer::start();
    let err = connect_err(&format!("{}?sslmode=require", pg.url("postgres", None))).await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to postgres at 127.0.0.1:{}: the server does not accept TLS but sslmode=require \
             requires it (set ssl = on in postgresql.conf, or use sslmode=prefer or disable)",
            pg.port()
        )
    );
    // prefer falls back to plain TCP.
    assert!(!server_sees_tls(&pg.url("postgres", None)).await);
}

#[tokio::test]
async fn scram_over_tls_ignores_the_plus_variant() {
    let pg = PgServer::start_with(PgOptions {
        auth: PgAuth::Scram,
        tls: true,
        ..Default::default()
    });
    pg.sql("CREATE ROLE repl WITH REPLICATION LOGIN PASSWORD 'secret'");
    let mut conn = connect(&format!(
        "{}?sslmode=require",
        pg.url("repl", Some("secret"))
    ))
    .await;
    conn.identify_system().await.unwrap();
    let err = connect_err(&format!(
        "{}?sslmode=require",
        pg.url("repl", Some("wrong"))
    ))
    .await;
    assert_eq!(err.code(), Some("28P01"));
}

#[tokio::test]
async fn physical_slots_are_created_and_read() {
    let pg = PgServer::start_with(PgOptions {
        conf: conf(&[("wal_level", "logical")]),
        ..Default::default()
    });
    let mut conn = connect(&pg.url("postgres", None)).await;
    assert_eq!(conn.read_replication_slot("logship").await.unwrap(), None);
    conn.create_physical_slot("logship").await.unwrap();
    let slot = conn
        .read_replication_slot("logship")
        .await
        .unwrap()
        .unwrap();
    let restart = slot.restart_lsn.expect("RESERVE_WAL sets restart_lsn");
    assert_eq!(
        restart,
        Lsn::from_str(
            &pg.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'logship'")
        )
        .unwrap()
    );
    assert_eq!(slot.restart_tli, Some(TimelineId::FIRST));
    // Creating it again is fine.
    conn.create_physical_slot("logship").await.unwrap();

    pg.sql("SELECT pg_create_logical_replication_slot('decoding', 'test_decoding')");
    let err = conn.read_replication_slot("decoding").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "READ_REPLICATION_SLOT \"decoding\" failed on postgres at 127.0.0.1:{}: replication slot \"decoding\" \
             is a logical slot (set the source's slot to a physical slot, or to a free name for logship to create)",
            pg.port()
        )
    );

    let err = conn.create_physical_slot("Bad-Name").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "CREATE_REPLICATION_SLOT \"Bad-Name\" failed on postgres at 127.0.0.1:{}: invalid replication slot \
             name \"Bad-Name\" (use 1 to 63 lowercase letters, digits and underscores)",
            pg.port()
        )
    );
    // The connection still works after refusing a name locally and a server error.
    conn.identify_system().await.unwrap();
}

/// The switch point recorded in a `.history` file's last line.
fn switchpoint(history: &[u8]) -> Lsn {
    let text = std::str::from_utf8(history).unwrap();
    let line = text.lines().rfind(|l| !l.trim().is_empty()).unwrap();
    Lsn::from_str(line.split('\t').nth(1).unwrap()).unwrap()
}

#[tokio::test]
async fn promoted_standby_serves_timeline_history_and_ends_the_old_timeline() {
    let primary = PgServer::start();
    primary.sql("CREATE TABLE before_promotion AS SELECT generate_series(1, 1000) AS g");
    let standby = PgServer::standby_of(&primary);
    standby.promote();
    let mut conn = connect(&standby.url("postgres", None)).await;
    let system = conn.identify_system().await.unwrap();
    let tli2 = TimelineId::new(2).unwrap();
    assert_eq!(system.timeline, tli2);
    assert_eq!(system.system_id, system_identifier(&primary));

    let (name, content) = conn.timeline_history(tli2).await.unwrap();
    assert_eq!(name, "00000002.history");
    assert_eq!(
        content.as_ref(),
        std::fs::read(standby.data_dir().join("pg_wal/00000002.history"))
            .unwrap()
            .as_slice()
    );
    let switch = switchpoint(&content);

    // Streaming timeline 1 from its last segment ends at the switch point with the next timeline.
    let seg = conn.wal_segment_size().await.unwrap();
    conn.create_physical_slot("history").await.unwrap();
    conn.start_replication("history", switch.segment_start(seg), TimelineId::FIRST)
        .await
        .unwrap();
    let mut received = switch.segment_start(seg);
    let end = loop {
        match conn.next_event().await.unwrap() {
            ReplicationEvent::XLogData(data) => {
                assert_eq!(data.wal_start, received);
                received = received.checked_add(data.data.len() as u64).unwrap();
            }
            ReplicationEvent::Keepalive(_) => {}
            other => break other,
        }
    };
    assert_eq!(
        end,
        ReplicationEvent::EndOfTimeline {
            next_tli: tli2,
            next_start: switch
        }
    );
    assert_eq!(received, switch);

    // Back in command mode: a start exactly at the switch point ends at once.
    conn.start_replication("history", switch, TimelineId::FIRST)
        .await
        .unwrap();
    assert_eq!(
        conn.next_event().await.unwrap(),
        ReplicationEvent::EndOfTimeline {
            next_tli: tli2,
            next_start: switch
        }
    );
    // And the new timeline streams.
    conn.start_replication("history", switch, tli2)
        .await
        .unwrap();
    standby.sql("SELECT pg_switch_wal()");
    loop {
        if let ReplicationEvent::XLogData(data) = conn.next_event().await.unwrap() {
            assert_eq!(data.wal_start, switch);
            break;
        }
    }
}

#[tokio::test]
async fn streams_wal_identical_to_pg_wal_and_moves_the_slot() {
    let pg = PgServer::start_with(PgOptions {
        // A reply is requested after wal_sender_timeout / 2 without one.
        conf: conf(&[("wal_sender_timeout", "4s")]),
        ..Default::default()
    });
    let mut conn = connect(&pg.url("postgres", None)).await;
    let seg = conn.wal_segment_size().await.unwrap();
    let system = conn.identify_system().await.unwrap();
    conn.create_physical_slot("stream").await.unwrap();
    let slot = conn.read_replication_slot("stream").await.unwrap().unwrap();
    let start = slot.restart_lsn.unwrap().segment_start(seg);
    conn.start_replication("stream", start, system.timeline)
        .await
        .unwrap();

    let port = pg.port();
    let load = tokio::spawn(async move {
        let (client, connection) = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(
                "CREATE TABLE bulk AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 100000) g;
                 SELECT pg_switch_wal();",
            )
            .await
            .unwrap();
    });

    let first_end = start.checked_add(seg.bytes()).unwrap();
    let mut first_segment = Vec::with_capacity(seg.bytes() as usize);
    let mut received = start;
    let mut replies = 0;
    let mut cancelled = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    // Stream past the first segment and until a keepalive asked for a reply.
    while received <= first_end || replies == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream stalled at {received}"
        );
        // Cancel next_event often: a cancelled read must lose no bytes.
        let event = match tokio::time::timeout(Duration::from_millis(1), conn.next_event()).await {
            Ok(event) => event.unwrap(),
            Err(_) => {
                cancelled += 1;
                continue;
            }
        };
        let mut batch = vec![event];
        while let Some(more) = conn.try_next_buffered().unwrap() {
            batch.push(more);
        }
        for event in batch {
            match event {
                ReplicationEvent::XLogData(data) => {
                    assert_eq!(data.wal_start, received, "WAL must arrive contiguously");
                    if received < first_end {
                        let room = (first_end.as_u64() - received.as_u64()) as usize;
                        first_segment.extend_from_slice(&data.data[..room.min(data.data.len())]);
                    }
                    received = received.checked_add(data.data.len() as u64).unwrap();
                }
                ReplicationEvent::Keepalive(k) if k.reply_requested => {
                    conn.send_status(&status(received, Lsn::INVALID))
                        .await
                        .unwrap();
                    replies += 1;
                }
                ReplicationEvent::Keepalive(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    load.await.unwrap();
    assert!(
        cancelled > 0,
        "the test should have cancelled next_event at least once"
    );

    let name = xlog_file_name(system.timeline, start.segment_no(seg), seg);
    let on_disk = pg.wal_file(&name);
    assert_eq!(first_segment.len(), on_disk.len());
    assert!(
        first_segment == on_disk,
        "streamed {name} differs from pg_wal/{name}"
    );

    // Acknowledging the first segment as flushed moves the slot there.
    conn.send_status(&status(received, first_end))
        .await
        .unwrap();
    let slot_lsn = || {
        Lsn::from_str(
            &pg.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'stream'"),
        )
        .unwrap()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while slot_lsn() != first_end {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot restart_lsn stayed at {} instead of {first_end}",
            slot_lsn()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn clean_shutdown_ends_the_stream() {
    let pg = PgServer::start();
    let mut conn = connect(&pg.url("postgres", None)).await;
    let system = conn.identify_system().await.unwrap();
    let seg = conn.wal_segment_size().await.unwrap();
    conn.create_physical_slot("shutdown").await.unwrap();
    let slot = conn
        .read_replication_slot("shutdown")
        .await
        .unwrap()
        .unwrap();
    let start = slot.restart_lsn.unwrap().segment_start(seg);
    conn.start_replication("shutdown", start, system.timeline)
        .await
        .unwrap();

    let pg = std::sync::Arc::new(pg);
    let stopper = {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.stop_fast())
    };
    let mut received = start;
    let end = loop {
        let event = tokio::time::timeout(Duration::from_secs(60), conn.next_event())
            .await
            .expect("the walsender should end the stream");
        match event.unwrap() {
            ReplicationEvent::XLogData(data) => {
                received = received.checked_add(data.data.len() as u64).unwrap();
            }
            // The walsender waits for everything sent to be confirmed before it ends.
            ReplicationEvent::Keepalive(_) => {
                conn.send_status(&status(received, received)).await.unwrap();
            }
            other => break other,
        }
    };
    assert_eq!(end, ReplicationEvent::EndOfStream);
    stopper.await.unwrap();
}

/// Sends one authentication request (`R`) with `code` and `body`.
async fn send_auth(socket: &mut tokio::net::TcpStream, code: i32, body: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let mut msg = vec![b'R'];
    msg.extend_from_slice(&(4 + 4 + body.len() as i32).to_be_bytes());
    msg.extend_from_slice(&code.to_be_bytes());
    msg.extend_from_slice(body);
    socket.write_all(&msg).await.unwrap();
}

/// Reads one tagged frontend message's body.
async fn read_message(socket: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let _tag = socket.read_u8().await.unwrap();
    let len = socket.read_i32().await.unwrap();
    let mut body = vec![0; len as usize - 4];
    socket.read_exact(&mut body).await.unwrap();
    body
}

#[tokio::test]
async fn scram_rejects_a_server_that_cannot_prove_the_password() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // A server that runs the SCRAM exchange without knowing the password.
    let impostor = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let len = socket.read_i32().await.unwrap();
        let mut startup = vec![0; len as usize - 4];
        socket.read_exact(&mut startup).await.unwrap();
        send_auth(&mut socket, 10, b"SCRAM-SHA-256\0\0").await;
        let initial = read_message(&mut socket).await;
        let text = String::from_utf8_lossy(&initial).into_owned();
        let nonce = text.split("r=").nth(1).unwrap().to_string();
        let first = format!("r={nonce}impostor,s=c2FsdHNhbHQ=,i=4096");
        send_auth(&mut socket, 11, first.as_bytes()).await;
        read_message(&mut socket).await;
        send_auth(
            &mut socket,
            12,
            b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .await;
    });
    let err = connect_err(&format!(
        "postgres://repl:secret@127.0.0.1:{port}/postgres?sslmode=disable"
    ))
    .await;
    assert_eq!(
        err.to_string(),
        format!(
            "cannot connect to postgres at 127.0.0.1:{port}: SCRAM authentication failed: SCRAM verification error \
             (the server could not prove it knows the password; check that the source URL points at the right server)"
        )
    );
    impostor.await.unwrap();
}
