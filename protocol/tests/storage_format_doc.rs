//! Executes the examples in `docs/storage-format.md`, so the page cannot drift from the code.

use logship_protocol::archive::backup::{BackupId, BackupMeta};
use logship_protocol::archive::identity::SourceIdentity;
use logship_protocol::archive::key::{ArchiveKey, SourceName};
use logship_protocol::archive::object::{self, Codec};
use logship_protocol::pg::key::WalKey;
use logship_protocol::pg::{Lsn, SegmentNo, TimelineId, WalSegSize};

const DOC: &str = include_str!("../../docs/storage-format.md");

/// The lines of the first fenced block after `heading`, if the page has one.
fn block_after(heading: &str) -> Option<Vec<&'static str>> {
    let rest = DOC.get(DOC.find(heading)?..)?;
    let start = rest.find("```\n")? + 4;
    let block = rest.get(start..)?;
    Some(block.get(..block.find("```")?)?.lines().collect())
}

#[test]
fn hexdump_example_is_the_identity_object() {
    let mut bytes = Vec::new();
    for line in block_after("### Example").unwrap() {
        // `xxd` layout: "offset: 8 groups of 4 hex digits  ascii".
        let hex = &line[10..line.len().min(49)];
        for group in hex.split_whitespace() {
            for pair in group.as_bytes().chunks(2) {
                bytes.push(u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap());
            }
        }
    }
    let identity = SourceIdentity::Postgres {
        system_id: 7312345678901234567,
        wal_seg_size: WalSegSize::DEFAULT,
    };
    assert_eq!(bytes, object::encode(&identity.encode(), Codec::None));
    let content = object::decode(&bytes).unwrap();
    assert_eq!(SourceIdentity::parse(&content), Ok(identity));
    assert_eq!(
        block_after("### Identity").unwrap().join("\n") + "\n",
        String::from_utf8(content).unwrap()
    );
}

#[test]
fn key_examples_parse_as_described() {
    let seg = WalSegSize::DEFAULT;
    let tli = |t| TimelineId::new(t).unwrap();
    let expected = [
        WalKey::History(tli(2)),
        WalKey::Segment {
            tli: tli(1),
            segno: SegmentNo::new(3),
        },
        WalKey::Segment {
            tli: tli(1),
            segno: SegmentNo::new(0x1FF),
        },
        WalKey::Piece {
            tli: tli(2),
            segno: SegmentNo::new(4),
            start: 0,
            end: 0x158000,
        },
    ];
    let keys: Vec<&str> = block_after("Examples, for source `main`")
        .unwrap()
        .iter()
        .map(|line| line.split_whitespace().next().unwrap())
        .collect();
    let main = SourceName::new("main").unwrap();
    let (identity, keys) = keys.split_first().unwrap();
    assert_eq!(
        ArchiveKey::parse(identity),
        Ok((main.clone(), ArchiveKey::Identity))
    );
    assert_eq!(keys.len(), expected.len());
    for (&text, key) in keys.iter().zip(expected) {
        assert_eq!(WalKey::parse(text, seg), Ok((main.clone(), key)));
        assert_eq!(key.format(&main, seg), text);
    }
}

#[test]
fn backup_key_examples_parse_as_described() {
    let id = BackupId::new(TimelineId::FIRST, Lsn::new(0x300_0028));
    assert_eq!(id.to_string(), "000000010000000003000028");
    let expected = [
        ArchiveKey::BackupChunk {
            id,
            tablespace: 0,
            chunk: 0,
        },
        ArchiveKey::BackupChunk {
            id,
            tablespace: 0,
            chunk: 1,
        },
        ArchiveKey::BackupChunk {
            id,
            tablespace: 16390,
            chunk: 0,
        },
        ArchiveKey::BackupManifest { id },
        ArchiveKey::BackupMeta { id },
    ];
    let keys: Vec<&str> = block_after("Backup keys, for source `main`")
        .unwrap()
        .iter()
        .map(|line| line.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(keys.len(), expected.len());
    let main = SourceName::new("main").unwrap();
    for (text, key) in keys.into_iter().zip(expected) {
        assert_eq!(ArchiveKey::parse(text), Ok((main.clone(), key)));
        assert_eq!(key.format(&main), text);
    }
}

#[test]
fn backup_meta_example_is_what_logship_writes() {
    let block = block_after("### Backup meta").unwrap().join("\n");
    let meta = BackupMeta::from_json(block.as_bytes()).unwrap();
    assert_eq!(meta.id.to_string(), "000000010000000003000028");
    assert_eq!(meta.system_id, 7312345678901234567);
    assert_eq!(meta.tablespaces[0].chunk_crcs, [0x1A2B_3C4D, 0x5E6F_7A8B]);
    assert_eq!(
        meta.raw_bytes,
        meta.tablespaces.iter().map(|t| t.raw_bytes).sum::<u64>()
    );
    assert_eq!(String::from_utf8(meta.to_json()).unwrap(), block);
}
