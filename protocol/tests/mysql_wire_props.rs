//! Property tests for the MySQL/MariaDB client protocol: the packet codec round-trips any
//! payload however the bytes arrive, and no parser panics on arbitrary bytes.

// Helpers are test code too: a panic there is a failed assertion.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use bytes::{Bytes, BytesMut};
use logship_protocol::mysql::packet::{HEADER_LEN, MAX_CHUNK};
use logship_protocol::mysql::{
    AuthMoreData, AuthSwitchRequest, CapabilityFlags, ColumnDefinition, DumpPacket, EofPacket,
    ErrPacket, Greeting, HandshakeV10, Login, LoginOptions, OkPacket, PacketDecoder, PacketError,
    QueryReader, encode_packet,
};
use proptest::prelude::*;

/// A payload of `len` bytes that differs per `seed`, without generating each byte.
fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Feeds `wire` to a decoder in pieces of `step` bytes and collects the payloads.
fn decode_in_pieces(
    wire: &[u8],
    step: usize,
    limit: usize,
) -> Result<Vec<(u8, Bytes)>, PacketError> {
    let mut decoder = PacketDecoder::new(limit);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in wire.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(p) = decoder.decode(&mut buf)? {
            out.push((p.seq, p.payload));
        }
    }
    assert!(buf.is_empty());
    Ok(out)
}

fn greeting() -> HandshakeV10 {
    HandshakeV10 {
        server_version: "8.0.36".into(),
        connection_id: 1,
        nonce: vec![1; 20],
        capabilities: CapabilityFlags::from_bits(0xFFFF_FFFF),
        charset: 45,
        status: 2,
        auth_plugin: "caching_sha2_password".into(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn small_payloads_round_trip_in_any_pieces(
        sizes in proptest::collection::vec(0usize..3000, 1..6),
        seq: u8,
        step in 1usize..5000,
    ) {
        let mut wire = BytesMut::new();
        let payloads: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &n)| payload(n, i as u8)).collect();
        for p in &payloads {
            encode_packet(seq, p, &mut wire);
        }
        let got = decode_in_pieces(&wire, step, 1 << 20).unwrap();
        prop_assert_eq!(got.len(), payloads.len());
        for ((s, got), want) in got.iter().zip(&payloads) {
            prop_assert_eq!(*s, seq);
            prop_assert_eq!(&got[..], &want[..]);
        }
    }

    #[test]
    fn random_bytes_never_panic_the_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut buf = BytesMut::from(&bytes[..]);
        let mut decoder = PacketDecoder::new(100);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        let b = Bytes::from(bytes.clone());
        let _ = Greeting::parse(&bytes);
        let _ = HandshakeV10::parse(&bytes);
        let _ = OkPacket::parse(&bytes);
        let _ = ErrPacket::parse(&bytes);
        let _ = EofPacket::parse(&bytes);
        let _ = AuthSwitchRequest::parse(&bytes);
        let _ = AuthMoreData::parse(&bytes);
        let _ = ColumnDefinition::parse(&bytes);
        let _ = DumpPacket::parse(&b, true);
        let _ = DumpPacket::parse(&b, false);
        for caps in [CapabilityFlags::default(), CapabilityFlags::DEPRECATE_EOF] {
            let mut reader = QueryReader::new(caps);
            for chunk in bytes.chunks(7) {
                if reader.push(&Bytes::copy_from_slice(chunk)).is_err() {
                    break;
                }
            }
        }
        let (mut login, _) = Login::start(&greeting(), LoginOptions::new("u", "p")).unwrap();
        for chunk in bytes.chunks(9) {
            if login.step(chunk).is_err() {
                break;
            }
        }
    }

    #[test]
    fn random_greetings_after_a_valid_prefix_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..80)) {
        // Past the version byte, so the parser walks every field.
        let mut bytes = b"\x0a8.0.36\0".to_vec();
        bytes.extend_from_slice(&tail);
        if let Ok(h) = HandshakeV10::parse(&bytes) {
            let _ = Login::start(&h, LoginOptions::new("u", "p"));
        }
    }
}

proptest! {
    // Few cases: each payload is about 16 MiB.
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn payloads_around_the_chunk_size_round_trip(
        delta in -2i64..=2,
        extra_chunks in 0usize..2,
        seq: u8,
        seed: u8,
    ) {
        let len = (MAX_CHUNK * (1 + extra_chunks)) as i64 + delta;
        let want = payload(len as usize, seed);
        let mut wire = BytesMut::new();
        let next = encode_packet(seq, &want, &mut wire);
        let fragments = want.len() / MAX_CHUNK + 1;
        prop_assert_eq!(wire.len(), want.len() + HEADER_LEN * fragments);
        prop_assert_eq!(next, seq.wrapping_add(fragments as u8));
        let got = decode_in_pieces(&wire, 1 << 22, 1 << 26).unwrap();
        prop_assert_eq!(got.len(), 1);
        prop_assert_eq!(got[0].0, seq);
        prop_assert!(got[0].1 == want);
    }
}

#[test]
fn an_oversized_split_payload_is_refused_before_it_is_buffered() {
    let mut wire = BytesMut::new();
    encode_packet(0, &payload(MAX_CHUNK + 10, 0), &mut wire);
    // The limit sits between the first fragment and the whole payload.
    let err = decode_in_pieces(&wire, 1 << 20, MAX_CHUNK + 5).unwrap_err();
    assert_eq!(
        err,
        PacketError::TooLarge {
            at_least: MAX_CHUNK + 10,
            limit: MAX_CHUNK + 5
        }
    );
}
