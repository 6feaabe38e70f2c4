//! The MySQL/MariaDB client protocol against bytes captured from a MariaDB 10.11 server
//! (see `fixtures/mysql-wire/README.md`), plus known vectors for each authentication plugin.

// Helpers are test code too: a panic there is a failed assertion.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use bytes::{Bytes, BytesMut};
use logship_protocol::mysql::auth::{
    ed25519_public_key, encrypt_password_rsa, scramble_caching_sha2, scramble_native_password,
    sign_ed25519,
};
use logship_protocol::mysql::command::{BINLOG_DUMP_NON_BLOCK, BINLOG_SEND_ANNOTATE_ROWS_EVENT};
use logship_protocol::mysql::lenenc::read_lenenc_bytes;
use logship_protocol::mysql::{
    AuthError, AuthStep, BinlogDump, BinlogDumpGtid, CapabilityFlags, Command, DumpErrorKind,
    DumpPacket, Greeting, HandshakeResponse41, HandshakeV10, Login, LoginOptions, Packet,
    PacketDecoder, QueryReader, QueryResponse, RegisterSlave, ResultSet, SemiSyncAck,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mysql-wire");

/// The logical packets of one direction of a captured connection.
fn packets(capture: &str, side: &str) -> Vec<Packet> {
    let path = format!("{FIXTURES}/mariadb-10.11-{capture}.{side}.bin");
    let mut buf = BytesMut::from(&std::fs::read(&path).unwrap()[..]);
    let mut decoder = PacketDecoder::new(1 << 20);
    let mut out = Vec::new();
    while let Some(packet) = decoder.decode(&mut buf).unwrap() {
        out.push(packet);
    }
    assert!(buf.is_empty(), "{path}: {} trailing bytes", buf.len());
    out
}

fn handshake(packet: &Packet) -> HandshakeV10 {
    match Greeting::parse(&packet.payload).unwrap() {
        Greeting::Handshake(h) => h,
        Greeting::Refused(err) => panic!("refused: {err}"),
    }
}

/// Feeds reply payloads to a QueryReader until it completes; returns it and the packets used.
fn read_query(packets: &[Packet], caps: CapabilityFlags) -> (QueryResponse, usize) {
    let mut reader = QueryReader::new(caps);
    for (i, p) in packets.iter().enumerate() {
        if let Some(response) = reader.push(&p.payload).unwrap() {
            return (response, i + 1);
        }
    }
    panic!("the reply did not end");
}

fn result_set(response: QueryResponse) -> ResultSet {
    match response {
        QueryResponse::ResultSet(rs) => rs,
        QueryResponse::Ok(ok) => panic!("expected rows, got {ok:?}"),
    }
}

#[test]
fn parses_a_mariadb_10_11_greeting() {
    let server = packets("ed25519-login", "server");
    assert_eq!(server[0].seq, 0);
    let h = handshake(&server[0]);
    assert_eq!(h.server_version, "5.5.5-10.11.19-MariaDB-0+deb12u1-log");
    assert_eq!(h.version(), "10.11.19-MariaDB-0+deb12u1-log");
    assert!(h.is_mariadb());
    assert_eq!(h.connection_id, 10);
    assert_eq!(h.nonce.len(), 20);
    assert_eq!(&h.nonce[..8], b"?R`ipu{-");
    assert_eq!(&h.nonce[8..], b"gBRXB#%/\\aT`");
    assert_eq!(h.auth_plugin, "mysql_native_password");
    assert_eq!((h.charset, h.status), (8, 2));
    // MariaDB clears CLIENT_MYSQL and sends its extended capabilities in the reserved bytes.
    assert!(!h.capabilities.contains(CapabilityFlags::CLIENT_MYSQL));
    assert_eq!(h.capabilities.bits() >> 32, 0x1D);
    for flag in [
        CapabilityFlags::PROTOCOL_41,
        CapabilityFlags::SECURE_CONNECTION,
        CapabilityFlags::PLUGIN_AUTH,
        CapabilityFlags::PLUGIN_AUTH_LENENC_CLIENT_DATA,
        CapabilityFlags::CONNECT_ATTRS,
        CapabilityFlags::DEPRECATE_EOF,
    ] {
        assert!(h.capabilities.contains(flag), "{flag:?}");
    }
    assert!(!h.capabilities.contains(CapabilityFlags::SSL));
}

#[test]
fn ed25519_login_matches_the_mariadb_client_byte_for_byte() {
    let server = packets("ed25519-login", "server");
    let client = packets("ed25519-login", "client");
    let greeting = handshake(&server[0]);
    let (mut login, start) = Login::start(&greeting, LoginOptions::new("u", "pw")).unwrap();
    assert_eq!((start.ssl_request.is_none(), start.response_seq), (true, 1));
    // The server's default is native password; the user is ed25519, so it switches.
    let switch = &server[1];
    assert_eq!(&switch.payload[..16], b"\xfeclient_ed25519\0");
    assert_eq!(switch.payload.len(), 16 + 32);
    let AuthStep::Send(signature) = login.step(&switch.payload).unwrap() else {
        panic!("expected a reply to the switch");
    };
    assert!(login.switched());
    assert_eq!(client[1].seq, switch.next_seq());
    assert_eq!(
        signature, client[1].payload,
        "signature differs from libmariadb's"
    );
    assert!(matches!(
        login.step(&server[2].payload).unwrap(),
        AuthStep::Done(_)
    ));
    assert!(matches!(
        login.step(&server[2].payload),
        Err(AuthError::Finished)
    ));
    let printed = format!("{login:?}");
    assert!(
        !printed.contains("\"pw\""),
        "the password must not be printed: {printed}"
    );
}

#[test]
fn ed25519_key_derivation_matches_the_servers_stored_key() {
    // `SELECT authentication_string FROM mysql.user WHERE user='u'` after
    // CREATE USER u IDENTIFIED VIA ed25519 USING PASSWORD('pw'):
    // vRq+ROSzhW4MwhdoPvlkL1fHkT0w6ZDDbTpVQwSNQ90 (base64, unpadded).
    let stored = hex("bd1abe44e4b3856e0cc217683ef9642f57c7913d30e990c36d3a5543048d43dd");
    assert_eq!(ed25519_public_key(b"pw").to_vec(), stored);
    // The signature verifies against that key with a standard Ed25519 verifier.
    let nonce = &packets("ed25519-login", "server")[1].payload[16..];
    let sig = sign_ed25519(nonce, b"pw");
    let key = ed25519_dalek::VerifyingKey::from_bytes(&stored.try_into().unwrap()).unwrap();
    key.verify_strict(nonce, &ed25519_dalek::Signature::from_bytes(&sig))
        .unwrap();
}

#[test]
fn native_password_scramble_matches_libmariadb() {
    let server = packets("native-login-query", "server");
    let client = packets("native-login-query", "client");
    let greeting = handshake(&server[0]);
    let response = &client[0].payload;
    // The auth response follows the 32-byte prefix and the NUL-terminated user "n".
    assert_eq!(&response[32..34], b"n\0");
    let mut rest = &response[34..];
    let scramble = read_lenenc_bytes(&mut rest).unwrap().unwrap();
    assert_eq!(
        scramble,
        &scramble_native_password(&greeting.nonce, b"secret-pw")[..]
    );
    let (mut login, start) = Login::start(&greeting, LoginOptions::new("n", "secret-pw")).unwrap();
    let ours = HandshakeV10::parse(&server[0].payload).unwrap();
    assert_eq!(ours, greeting);
    assert!(start.response.windows(20).any(|w| w == scramble));
    assert!(matches!(
        login.step(&server[1].payload).unwrap(),
        AuthStep::Done(_)
    ));
}

#[test]
fn handshake_response_encodes_like_libmariadb() {
    let client = packets("native-login-query", "client");
    let captured = &client[0].payload;
    let caps = u32::from_le_bytes(captured[..4].try_into().unwrap());
    let extended = u32::from_le_bytes(captured[28..32].try_into().unwrap());
    let mut rest = &captured[34..];
    let auth_response = read_lenenc_bytes(&mut rest).unwrap().unwrap().to_vec();
    let plugin_end = rest.iter().position(|&b| b == 0).unwrap();
    let mut attrs_bytes = read_lenenc_bytes(&mut &rest[plugin_end + 1..])
        .unwrap()
        .unwrap();
    let mut connect_attrs = Vec::new();
    while !attrs_bytes.is_empty() {
        let k = read_lenenc_bytes(&mut attrs_bytes).unwrap().unwrap();
        let v = read_lenenc_bytes(&mut attrs_bytes).unwrap().unwrap();
        connect_attrs.push((
            String::from_utf8(k.to_vec()).unwrap(),
            String::from_utf8(v.to_vec()).unwrap(),
        ));
    }
    assert!(connect_attrs.contains(&("program_name".into(), "mysql".into())));
    let ours = HandshakeResponse41 {
        capabilities: CapabilityFlags::from_bits(u64::from(caps) | u64::from(extended) << 32),
        max_packet_size: u32::from_le_bytes(captured[4..8].try_into().unwrap()),
        charset: captured[8],
        user: "n".into(),
        auth_response,
        database: None,
        auth_plugin: "mysql_native_password".into(),
        connect_attrs,
    };
    let mut buf = BytesMut::new();
    ours.encode(&mut buf);
    assert_eq!(&buf[..], &captured[..]);
}

#[test]
fn reads_result_sets_ended_by_eof_packets() {
    let server = packets("native-login-query", "server");
    let greeting = handshake(&server[0]);
    // The mariadb client did not ask for DEPRECATE_EOF.
    let caps = greeting
        .capabilities
        .without(CapabilityFlags::DEPRECATE_EOF);
    let replies = &server[2..];
    let (first, used) = read_query(replies, caps);
    let rs = result_set(first);
    assert_eq!(rs.columns[0].name, "@@global.binlog_checksum");
    assert_eq!(rs.get(0, "@@global.binlog_checksum"), Some(&b"CRC32"[..]));
    let (second, used2) = read_query(&replies[used..], caps);
    assert_eq!(used + used2, replies.len());
    let rs = result_set(second);
    let names: Vec<_> = rs.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(
        (rs.columns[0].schema.as_str(), rs.columns[0].table.as_str()),
        ("db", "t")
    );
    assert_eq!(
        rs.rows,
        vec![
            vec![
                Some(Bytes::from_static(b"1")),
                Some(Bytes::from_static(b"x"))
            ],
            vec![Some(Bytes::from_static(b"2")), None],
        ]
    );
}

#[test]
fn binlog_dump_stream_ends_with_eof_in_non_blocking_mode() {
    let server = packets("binlog-dump-nonblock", "server");
    let client = packets("binlog-dump-nonblock", "client");
    // mariadb-binlog's request, as this encoder writes it.
    let mut buf = BytesMut::new();
    Command::BinlogDump(BinlogDump {
        position: 4,
        flags: BINLOG_DUMP_NON_BLOCK | BINLOG_SEND_ANNOTATE_ROWS_EVENT,
        server_id: 0,
        file: "binlog.000001".into(),
    })
    .encode(&mut buf)
    .unwrap();
    let dump_request = client.iter().position(|p| p.payload[0] == 0x12).unwrap();
    assert_eq!(client[dump_request].seq, 0);
    assert_eq!(&buf[4..], &client[dump_request].payload[..]);
    // Greeting, login OK, SELECT VERSION() (5 packets), two SET OKs; then the dump.
    let dump = &server[9..];
    let mut events = 0;
    for (i, p) in dump.iter().enumerate() {
        match DumpPacket::parse(&p.payload, false).unwrap() {
            DumpPacket::Event(e) => {
                assert!(!e.ack_requested);
                let len = u32::from_le_bytes(e.event[9..13].try_into().unwrap());
                assert_eq!(len as usize, e.event.len(), "event {i}");
                events += 1;
            }
            DumpPacket::Eof => assert_eq!(i, dump.len() - 1),
            DumpPacket::Error(e) => panic!("{e:?}"),
        }
    }
    assert!(events > 20);
    // The first event is the fake Rotate (type 4) naming the file; then the
    // Format_description (type 15).
    let DumpPacket::Event(rotate) = DumpPacket::parse(&dump[0].payload, false).unwrap() else {
        panic!()
    };
    assert_eq!(rotate.event[4], 4);
    assert!(rotate.event.ends_with(b"binlog.000001"));
}

#[test]
fn dump_of_a_missing_file_is_classified() {
    let server = packets("binlog-dump-missing-file", "server");
    let DumpPacket::Error(err) = DumpPacket::parse(&server.last().unwrap().payload, false).unwrap()
    else {
        panic!("expected an error");
    };
    assert_eq!(err.err.code, 1236);
    assert_eq!(err.err.sql_state.as_deref(), Some("HY000"));
    assert_eq!(
        err.err.message,
        "Could not find first log file name in binary log index file"
    );
    assert_eq!(err.kind, DumpErrorKind::LogFileNotFound);
}

#[test]
fn dump_from_inside_an_event_is_classified() {
    let server = packets("binlog-dump-bad-position", "server");
    let DumpPacket::Error(err) = DumpPacket::parse(&server.last().unwrap().payload, false).unwrap()
    else {
        panic!("expected an error");
    };
    assert_eq!(err.err.code, 1236);
    assert_eq!(
        err.err.message,
        "bogus data in log event; the first event 'binlog.000001' at 5, the last event read \
         from 'binlog.000001' at 5, the last byte read from 'binlog.000001' at 24."
    );
    assert_eq!(err.kind, DumpErrorKind::BogusData);
}

#[test]
fn semi_sync_stream_and_ack_match_a_live_exchange() {
    let server = packets("semisync-dump", "server");
    let client = packets("semisync-dump", "client");
    let greeting = handshake(&server[0]);
    // This client asked for DEPRECATE_EOF, so the SELECT's rows end with an OK (0xFE).
    let caps = CapabilityFlags::from_bits(u64::from(u32::from_le_bytes(
        client[0].payload[..4].try_into().unwrap(),
    )));
    assert!(caps.contains(CapabilityFlags::DEPRECATE_EOF));
    let _ = greeting;
    let mut at = 2;
    for _ in 0..2 {
        let (reply, used) = read_query(&server[at..], caps);
        assert!(matches!(reply, QueryResponse::Ok(_)));
        at += used;
    }
    let (reply, used) = read_query(&server[at..], caps);
    let rs = result_set(reply);
    assert_eq!(
        rs.rows,
        vec![vec![
            Some(Bytes::from_static(b"CRC32")),
            Some(Bytes::from_static(b"1"))
        ]]
    );
    at += used;

    let mut last = None;
    for p in &server[at..] {
        let DumpPacket::Event(e) = DumpPacket::parse(&p.payload, true).unwrap() else {
            panic!("expected events only");
        };
        // Without the semi-sync flag the header would be read as the event's first bytes.
        assert!(DumpPacket::parse(&p.payload, false).is_ok());
        last = Some((p.seq, e));
    }
    let (_, xid) = last.unwrap();
    assert!(xid.ack_requested);
    assert_eq!(
        xid.event[4], 16,
        "the acknowledged event is the XID that ends the transaction"
    );
    let next_pos = u32::from_le_bytes(xid.event[13..17].try_into().unwrap());
    let mut ack = BytesMut::new();
    SemiSyncAck {
        file: "binlog.000001".into(),
        position: u64::from(next_pos),
    }
    .encode(&mut ack)
    .unwrap();
    let sent = client.last().unwrap();
    assert_eq!(sent.seq, 0);
    assert_eq!(
        &ack[4..],
        &sent.payload[..],
        "the source accepted exactly these bytes"
    );
}

#[test]
fn caching_sha2_scramble_matches_the_documented_formula() {
    // Python: t1=sha256(pw); t2=sha256(t1); xor(t1, sha256(t2 + nonce)), nonce = 1..=20.
    let nonce: Vec<u8> = (1..=20).collect();
    assert_eq!(
        scramble_caching_sha2(&nonce, b"secret-pw"),
        hex("702fa0e474391a0956d714f772bc509eee0b17df5d3148085e353830a638211c")
    );
    // Python: s1=sha1(pw); s2=sha1(s1); xor(s1, sha1(nonce + s2)).
    assert_eq!(
        scramble_native_password(&nonce, b"secret-pw"),
        hex("1e58b73f68d9dafb7b3e186a5419a21c9e153b15")
    );
    assert!(scramble_caching_sha2(&nonce, b"").is_empty());
    assert!(scramble_native_password(&nonce, b"").is_empty());
}

/// A MySQL 8 style greeting with caching_sha2_password as the default plugin.
fn mysql8_greeting(tls: bool) -> HandshakeV10 {
    let mut caps = CapabilityFlags::CLIENT_MYSQL
        | CapabilityFlags::PROTOCOL_41
        | CapabilityFlags::SECURE_CONNECTION
        | CapabilityFlags::PLUGIN_AUTH
        | CapabilityFlags::PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::DEPRECATE_EOF;
    if tls {
        caps = caps | CapabilityFlags::SSL;
    }
    HandshakeV10 {
        server_version: "8.0.36".into(),
        connection_id: 8,
        nonce: (1..=20).collect(),
        capabilities: caps,
        charset: 255,
        status: 2,
        auth_plugin: "caching_sha2_password".into(),
    }
}

const OK: &[u8] = &[0, 0, 0, 2, 0, 0, 0];

#[test]
fn caching_sha2_fast_path() {
    let (mut login, start) =
        Login::start(&mysql8_greeting(false), LoginOptions::new("r", "secret-pw")).unwrap();
    let nonce: Vec<u8> = (1..=20).collect();
    assert!(
        start
            .response
            .windows(32)
            .any(|w| w == scramble_caching_sha2(&nonce, b"secret-pw"))
    );
    assert!(
        login
            .capabilities()
            .contains(CapabilityFlags::DEPRECATE_EOF)
    );
    assert_eq!(login.step(&[0x01, 0x03]).unwrap(), AuthStep::Wait);
    assert!(matches!(login.step(OK).unwrap(), AuthStep::Done(_)));
}

#[test]
fn caching_sha2_full_auth_over_tls_sends_the_password() {
    let mut options = LoginOptions::new("r", "secret-pw");
    options.tls = true;
    let (mut login, start) = Login::start(&mysql8_greeting(true), options).unwrap();
    let ssl = start.ssl_request.unwrap();
    assert_eq!(ssl.len(), 32);
    assert_eq!(start.response_seq, 2);
    assert_eq!(&start.response[..32], &ssl[..]);
    assert_eq!(
        login.step(&[0x01, 0x04]).unwrap(),
        AuthStep::Send(Bytes::from_static(b"secret-pw\0"))
    );
    assert!(matches!(login.step(OK).unwrap(), AuthStep::Done(_)));
}

#[test]
fn caching_sha2_full_auth_without_tls_uses_the_servers_rsa_key() {
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let private = rsa::PrivateKey::new(&mut getrandom::SysRng, 1024).unwrap();
    let pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let nonce: Vec<u8> = (1..=20).collect();
    let decrypt = |ciphertext: &[u8]| {
        let mut plain = private
            .decrypt(rsa::Oaep::<sha1::Sha1>::new(), ciphertext)
            .unwrap();
        for (b, n) in plain.iter_mut().zip(nonce.iter().cycle()) {
            *b ^= n;
        }
        plain
    };
    assert_eq!(
        decrypt(
            &encrypt_password_rsa(&pem, &nonce, b"a password longer than the 20-byte nonce")
                .unwrap()
        ),
        b"a password longer than the 20-byte nonce\0"
    );

    // Asking the server for its key.
    let (mut login, _) =
        Login::start(&mysql8_greeting(false), LoginOptions::new("r", "secret-pw")).unwrap();
    assert_eq!(
        login.step(&[0x01, 0x04]).unwrap(),
        AuthStep::Send(Bytes::from_static(&[0x02]))
    );
    let mut key_packet = vec![0x01];
    key_packet.extend_from_slice(pem.as_bytes());
    let AuthStep::Send(encrypted) = login.step(&key_packet).unwrap() else {
        panic!("expected the encrypted password");
    };
    assert_eq!(decrypt(&encrypted), b"secret-pw\0");
    assert!(matches!(login.step(OK).unwrap(), AuthStep::Done(_)));

    // With the key configured, no round trip for it.
    let mut options = LoginOptions::new("r", "secret-pw");
    options.server_public_key_pem = Some(pem.clone());
    let (mut login, _) = Login::start(&mysql8_greeting(false), options).unwrap();
    let AuthStep::Send(encrypted) = login.step(&[0x01, 0x04]).unwrap() else {
        panic!("expected the encrypted password");
    };
    assert_eq!(decrypt(&encrypted), b"secret-pw\0");

    // A PKCS#1 key works too; garbage does not.
    use rsa::pkcs1::EncodeRsaPublicKey;
    let pkcs1 = private
        .to_public_key()
        .to_pkcs1_pem(LineEnding::LF)
        .unwrap();
    assert_eq!(
        decrypt(&encrypt_password_rsa(&pkcs1, &nonce, b"pw").unwrap()),
        b"pw\0"
    );
    assert!(matches!(
        encrypt_password_rsa("not a key", &nonce, b"pw"),
        Err(AuthError::PublicKey { .. })
    ));
}

#[test]
fn switches_from_ed25519_default_through_auth_more_data() {
    // A client that starts with client_ed25519 gets its nonce as AuthMoreData.
    let mut greeting = mysql8_greeting(false);
    greeting.auth_plugin = "client_ed25519".into();
    let (mut login, start) = Login::start(&greeting, LoginOptions::new("u", "pw")).unwrap();
    assert!(start.response.ends_with(b"client_ed25519\0"));
    let nonce = [7u8; 32];
    let mut more = vec![0x01];
    more.extend_from_slice(&nonce);
    assert_eq!(
        login.step(&more).unwrap(),
        AuthStep::Send(Bytes::copy_from_slice(&sign_ed25519(&nonce, b"pw")))
    );
}

#[test]
fn switch_to_native_password_uses_the_new_nonce() {
    let (mut login, _) =
        Login::start(&mysql8_greeting(false), LoginOptions::new("r", "pw")).unwrap();
    let mut switch = b"\xfemysql_native_password\0".to_vec();
    let nonce: Vec<u8> = (100..120).collect();
    switch.extend_from_slice(&nonce);
    switch.push(0);
    assert_eq!(
        login.step(&switch).unwrap(),
        AuthStep::Send(Bytes::from(scramble_native_password(&nonce, b"pw")))
    );
    assert!(matches!(login.step(OK).unwrap(), AuthStep::Done(_)));
}

#[test]
fn refusals_name_what_is_wrong() {
    let (mut login, _) =
        Login::start(&mysql8_greeting(false), LoginOptions::new("r", "pw")).unwrap();
    let err = login.step(b"\xfeauth_gssapi_client\0xyz").unwrap_err();
    assert_eq!(
        err,
        AuthError::UnsupportedPlugin {
            name: "auth_gssapi_client".into()
        }
    );
    assert!(err.to_string().contains("\"auth_gssapi_client\""), "{err}");

    let (mut login, _) =
        Login::start(&mysql8_greeting(false), LoginOptions::new("r", "pw")).unwrap();
    let err = login.step(b"\xfemysql_clear_password\0").unwrap_err();
    assert_eq!(
        err,
        AuthError::CleartextWithoutTls {
            plugin: "mysql_clear_password"
        }
    );

    let mut options = LoginOptions::new("r", "pw");
    options.tls = true;
    let (mut login, _) = Login::start(&mysql8_greeting(true), options).unwrap();
    assert_eq!(
        login.step(b"\xfemysql_clear_password\0").unwrap(),
        AuthStep::Send(Bytes::from_static(b"pw\0"))
    );

    let (mut login, _) =
        Login::start(&mysql8_greeting(false), LoginOptions::new("r", "pw")).unwrap();
    let err = login
        .step(b"\xff\x15\x04#28000Access denied for user 'r'@'localhost' (using password: YES)")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the server refused the login: ERROR 1045 (28000): Access denied for user 'r'@'localhost' \
         (using password: YES)"
    );

    let mut options = LoginOptions::new("r", "pw");
    options.tls = true;
    assert_eq!(
        Login::start(&mysql8_greeting(false), options).unwrap_err(),
        AuthError::TlsUnavailable
    );
}

#[test]
fn encodes_the_replication_commands() {
    let payload = |c: Command| {
        let mut buf = BytesMut::new();
        c.encode_payload(&mut buf).unwrap();
        buf.to_vec()
    };
    assert_eq!(payload(Command::Ping), [0x0E]);
    assert_eq!(payload(Command::Quit), [0x01]);
    assert_eq!(payload(Command::Query("SELECT 1".into())), b"\x03SELECT 1");
    assert_eq!(
        payload(Command::RegisterSlave(RegisterSlave {
            server_id: 0x0102_0304,
            host: "h".into(),
            user: "us".into(),
            password: String::new(),
            port: 3306,
            rank: 0,
            master_id: 0,
        })),
        [
            0x15, 4, 3, 2, 1, 1, b'h', 2, b'u', b's', 0, 0xEA, 0x0C, 0, 0, 0, 0, 0, 0, 0, 0
        ]
    );
    let too_long = Command::RegisterSlave(RegisterSlave {
        server_id: 1,
        host: "h".repeat(256),
        user: String::new(),
        password: String::new(),
        port: 0,
        rank: 0,
        master_id: 0,
    });
    assert!(too_long.encode_payload(&mut BytesMut::new()).is_err());
    let gtid = payload(Command::BinlogDumpGtid(BinlogDumpGtid {
        flags: BINLOG_DUMP_NON_BLOCK,
        server_id: 9,
        file: String::new(),
        position: 4,
        encoded_gtid_set: Some(Bytes::from_static(&[1, 0, 0, 0, 0, 0, 0, 0])),
    }));
    let mut expected = vec![
        0x1E, 0x05, 0, 9, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0,
    ];
    expected.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(gtid, expected);
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
