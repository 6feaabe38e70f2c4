//! The primary's half of the MySQL/MariaDB protocol: what it encodes parses back with the
//! client's own parsers, what libmariadb sent in a captured login parses, and nothing
//! from the network makes it panic.

// Test code: a panic is a failed assertion.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use bytes::{Bytes, BytesMut};
use logship_protocol::mysql::auth::{check_native_password, scramble_native_password};
use logship_protocol::mysql::event::LOG_EVENT_BINLOG_IN_USE_F;
use logship_protocol::mysql::serve::format_description_for_dump;
use logship_protocol::mysql::{
    BinlogDump, BinlogReader, CapabilityFlags, ColumnDefinition, Command, DumpPacket, EventData,
    EventDecoder, Greeting, HandshakeResponse41, HandshakeV10, Login, LoginOptions, Packet,
    PacketDecoder, QueryReader, QueryResponse, RegisterSlave, ResultSet, encode_dump_event,
};
use proptest::prelude::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn packets(capture: &str, side: &str) -> Vec<Packet> {
    let path = format!("{FIXTURES}/mysql-wire/mariadb-10.11-{capture}.{side}.bin");
    let mut buf = BytesMut::from(&std::fs::read(&path).unwrap()[..]);
    let mut decoder = PacketDecoder::new(1 << 20);
    let mut out = Vec::new();
    while let Some(packet) = decoder.decode(&mut buf).unwrap() {
        out.push(packet);
    }
    out
}

fn greeting(caps: CapabilityFlags) -> HandshakeV10 {
    HandshakeV10 {
        server_version: "5.5.5-10.11.19-MariaDB-log".into(),
        connection_id: 42,
        nonce: b"abcdefgh!#$%&()*+,-.".to_vec(),
        capabilities: caps,
        charset: 45,
        status: 2,
        auth_plugin: "mysql_native_password".into(),
    }
}

/// What the primary offers: what a replica's client needs, and no TLS or compression.
fn primary_caps() -> CapabilityFlags {
    CapabilityFlags::CLIENT_MYSQL
        | CapabilityFlags::LONG_FLAG
        | CapabilityFlags::CONNECT_WITH_DB
        | CapabilityFlags::PROTOCOL_41
        | CapabilityFlags::TRANSACTIONS
        | CapabilityFlags::SECURE_CONNECTION
        | CapabilityFlags::MULTI_RESULTS
        | CapabilityFlags::PLUGIN_AUTH
        | CapabilityFlags::CONNECT_ATTRS
        | CapabilityFlags::PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::DEPRECATE_EOF
}

#[test]
fn the_greeting_parses_back_and_a_client_logs_in_with_it() {
    let ours = greeting(primary_caps());
    let mut buf = BytesMut::new();
    ours.encode(&mut buf);
    let Greeting::Handshake(parsed) = Greeting::parse(&buf).unwrap() else {
        panic!("refused");
    };
    assert_eq!(parsed, ours);
    assert_eq!(parsed.version(), "10.11.19-MariaDB-log");
    // The client's login answers it, and the server's check accepts exactly that answer.
    let (_, start) = Login::start(&parsed, LoginOptions::new("replay", "s3cret")).unwrap();
    let response = HandshakeResponse41::parse(&start.response).unwrap();
    assert_eq!(response.user, "replay");
    assert_eq!(response.auth_plugin, "mysql_native_password");
    assert!(check_native_password(
        &ours.nonce,
        b"s3cret",
        &response.auth_response
    ));
    assert!(!check_native_password(
        &ours.nonce,
        b"s3cret!",
        &response.auth_response
    ));
    assert!(!check_native_password(
        &ours.nonce,
        b"",
        &response.auth_response
    ));
    assert!(check_native_password(&ours.nonce, b"", b""));
}

#[test]
fn parses_the_login_libmariadb_sent() {
    let server = packets("native-login-query", "server");
    let client = packets("native-login-query", "client");
    let Greeting::Handshake(greeting) = Greeting::parse(&server[0].payload).unwrap() else {
        panic!("refused");
    };
    let response = HandshakeResponse41::parse(&client[0].payload).unwrap();
    assert_eq!(response.user, "n");
    assert_eq!(response.auth_plugin, "mysql_native_password");
    assert!(
        response
            .connect_attrs
            .contains(&("program_name".into(), "mysql".into()))
    );
    assert!(check_native_password(
        &greeting.nonce,
        b"secret-pw",
        &response.auth_response
    ));
    // Encoding it again gives the captured bytes.
    let mut buf = BytesMut::new();
    response.encode(&mut buf);
    assert_eq!(&buf[..], &client[0].payload[..]);
    // The query that followed is a COM_QUERY.
    assert!(matches!(
        Command::parse(&client[1].payload).unwrap(),
        Some(Command::Query(_))
    ));
}

#[test]
fn a_scramble_is_what_the_client_computes() {
    let nonce = b"01234567890123456789";
    let answer = scramble_native_password(nonce, b"pw");
    assert!(check_native_password(nonce, b"pw", &answer));
    let mut flipped = answer.clone();
    flipped[19] ^= 1;
    assert!(!check_native_password(nonce, b"pw", &flipped));
    assert!(!check_native_password(nonce, b"pw", &answer[..19]));
}

#[test]
fn replication_commands_parse_back() {
    let commands = [
        Command::Query("SELECT UNIX_TIMESTAMP()".into()),
        Command::Ping,
        Command::Quit,
        Command::RegisterSlave(RegisterSlave {
            server_id: 2,
            host: "replica".into(),
            user: String::new(),
            password: String::new(),
            port: 3307,
            rank: 0,
            master_id: 0,
        }),
        Command::BinlogDump(BinlogDump {
            position: 1234,
            flags: 2,
            server_id: 2,
            file: "binlog.000003".into(),
        }),
    ];
    for command in commands {
        let mut buf = BytesMut::new();
        command.encode_payload(&mut buf).unwrap();
        assert_eq!(Command::parse(&buf).unwrap(), Some(command));
    }
    // COM_STATISTICS is not modelled: the server refuses it with an ERR.
    assert_eq!(Command::parse(&[0x09]).unwrap(), None);
    assert!(Command::parse(&[]).is_err());
    assert!(Command::parse(&[0x12, 1, 2]).is_err());
}

fn result_set() -> ResultSet {
    ResultSet {
        columns: vec![
            ColumnDefinition::expression("Variable_name", 253, 33),
            ColumnDefinition::expression("Value", 253, 33),
        ],
        rows: vec![
            vec![
                Some(Bytes::from_static(b"server_id")),
                Some(Bytes::from("1")),
            ],
            vec![Some(Bytes::from_static(b"nothing")), None],
        ],
        status: 2,
    }
}

#[test]
fn result_sets_parse_back_with_and_without_eof_packets() {
    for caps in [
        primary_caps(),
        primary_caps().without(CapabilityFlags::DEPRECATE_EOF),
    ] {
        let rs = result_set();
        let mut wire = BytesMut::new();
        // Count, 2 columns, (EOF), 2 rows, the end.
        let packets = if caps.contains(CapabilityFlags::DEPRECATE_EOF) {
            6
        } else {
            7
        };
        assert_eq!(rs.encode(caps, 1, &mut wire), 1 + packets);
        let mut decoder = PacketDecoder::new(1 << 20);
        let mut reader = QueryReader::new(caps);
        let mut got = None;
        let mut expect_seq = 1u8;
        while let Some(packet) = decoder.decode(&mut wire).unwrap() {
            assert_eq!(packet.seq, expect_seq);
            expect_seq += 1;
            if let Some(response) = reader.push(&packet.payload).unwrap() {
                got = Some(response);
            }
        }
        assert_eq!(got, Some(QueryResponse::ResultSet(rs)));
    }
}

#[test]
fn dump_events_parse_back_whole_across_16_mib_packets() {
    let event: Vec<u8> = (0..17 << 20).map(|i| (i % 251) as u8).collect();
    let mut wire = BytesMut::new();
    assert_eq!(encode_dump_event(1, &event, &mut wire), 3);
    let mut decoder = PacketDecoder::new(64 << 20);
    let packet = decoder.decode(&mut wire).unwrap().unwrap();
    assert!(wire.is_empty());
    match DumpPacket::parse(&packet.payload, false).unwrap() {
        DumpPacket::Event(e) => assert!(e.event == event),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_format_description_resent_mid_file_keeps_a_valid_crc() {
    let file = std::fs::read(format!(
        "{FIXTURES}/mysql-binlogs/mariadb-10.11-binlog.000002"
    ))
    .unwrap();
    let mut reader = BinlogReader::new();
    reader.feed(&file);
    let fde = reader.next_event().unwrap().unwrap();
    let EventData::FormatDescription(format) = fde.data().clone() else {
        panic!("{:?}", fde.data());
    };
    for resumed in [false, true] {
        let mut raw = fde.raw().to_vec();
        raw[17] |= LOG_EVENT_BINLOG_IN_USE_F as u8;
        let sent = format_description_for_dump(&raw, resumed, format.checksum).unwrap();
        let event = EventDecoder::new().decode(sent.clone(), 4).unwrap();
        assert_eq!(event.header().flags & LOG_EVENT_BINLOG_IN_USE_F, 0);
        let EventData::FormatDescription(again) = event.data() else {
            panic!("{:?}", event.data());
        };
        if resumed {
            assert_eq!(event.header().log_pos, 0);
            assert_eq!(again.create_timestamp, 0);
            assert!(event.is_stream_only());
        } else {
            assert_eq!(event.header().log_pos, fde.header().log_pos);
            assert_eq!(&sent[..], fde.raw());
        }
    }
}

proptest! {
    #[test]
    fn parsers_never_panic_on_network_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = HandshakeResponse41::parse(&bytes);
        let _ = Command::parse(&bytes);
        let _ = format_description_for_dump(&bytes, true, None);
    }

    #[test]
    fn handshake_responses_round_trip(
        user in "[a-z_]{0,16}",
        auth in prop::collection::vec(any::<u8>(), 0..40),
        database in prop::option::of("[a-z]{1,8}"),
        attrs in prop::collection::vec(("[a-z_]{1,10}", "[ -~]{0,20}"), 0..4),
        lenenc in any::<bool>(),
    ) {
        let mut caps = primary_caps();
        if !lenenc {
            caps = caps.without(CapabilityFlags::PLUGIN_AUTH_LENENC_CLIENT_DATA);
        }
        let response = HandshakeResponse41 {
            capabilities: caps,
            max_packet_size: 1 << 30,
            charset: 45,
            user,
            auth_response: auth,
            database,
            auth_plugin: "mysql_native_password".into(),
            connect_attrs: attrs,
        };
        let mut buf = BytesMut::new();
        response.encode(&mut buf);
        let parsed = HandshakeResponse41::parse(&buf).unwrap();
        prop_assert_eq!(parsed.capabilities, response.effective_capabilities());
        prop_assert_eq!(
            HandshakeResponse41 { capabilities: response.effective_capabilities(), ..response },
            parsed
        );
    }

    #[test]
    fn greetings_round_trip(
        version in "[0-9][ -~]{0,40}",
        id in any::<u32>(),
        nonce in prop::collection::vec(0x21u8..0x7F, 20),
        status in any::<u16>(),
    ) {
        let ours = HandshakeV10 {
            server_version: version,
            connection_id: id,
            nonce,
            capabilities: primary_caps(),
            charset: 45,
            status,
            auth_plugin: "mysql_native_password".into(),
        };
        let mut buf = BytesMut::new();
        ours.encode(&mut buf);
        prop_assert_eq!(HandshakeV10::parse(&buf).unwrap(), ours);
    }
}
