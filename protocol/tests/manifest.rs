//! Reads `backup_manifest` files made by a real PostgreSQL 15 and verifies the data files
//! checked in next to them (see `fixtures/manifest/README.md`).

// Helpers are test code too: a panic there is a failed assertion.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use std::io::Read;

use logship_protocol::pg::manifest::{BackupManifest, ChecksumAlgorithm, ManifestError};
use logship_protocol::pg::{Lsn, TimelineId};
use sha2::{Digest, Sha256};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/manifest");
/// The data files kept next to each manifest.
const FILES: [&str; 3] = ["PG_VERSION", "global/pg_control", "backup_label"];

/// The fixture backups: directory and the checksum algorithm they were taken with.
const BACKUPS: [(&str, ChecksumAlgorithm); 2] = [
    ("crc32c", ChecksumAlgorithm::Crc32c),
    ("sha256", ChecksumAlgorithm::Sha256),
];

fn manifest_bytes(dir: &str) -> Vec<u8> {
    let file = std::fs::File::open(format!("{FIXTURES}/{dir}/backup_manifest.lz4")).unwrap();
    let mut bytes = Vec::new();
    lz4_flex::frame::FrameDecoder::new(file)
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

fn data_file(dir: &str, path: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{dir}/{path}")).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Feeds `bytes` to the file's verifier in uneven pieces.
fn verify(manifest: &BackupManifest, path: &str, bytes: &[u8]) -> Result<(), ManifestError> {
    let mut verifier = manifest.file(path).unwrap().verifier();
    for piece in bytes.chunks(1000) {
        let (a, b) = piece.split_at(piece.len() / 3);
        verifier.update(a);
        verifier.update(b);
    }
    verifier.finish()
}

#[test]
fn real_manifests_parse_with_their_checksum_verified() {
    for (dir, algorithm) in BACKUPS {
        let manifest = BackupManifest::parse(&manifest_bytes(dir)).unwrap();
        assert!(manifest.files().len() > 900, "{dir}");
        for file in manifest.files() {
            assert_eq!(file.checksum.as_ref().unwrap().algorithm, algorithm);
            assert_eq!(manifest.file(&file.path), Some(file));
        }
        assert_eq!(manifest.file("PG_VERSION").unwrap().size, 3);
        assert_eq!(manifest.system_identifier(), None);

        // The WAL range starts where backup_label says the backup started.
        let label = String::from_utf8(data_file(dir, "backup_label")).unwrap();
        let start: Lsn = label
            .lines()
            .find_map(|l| l.strip_prefix("START WAL LOCATION: "))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap();
        let [range] = manifest.wal_ranges() else {
            panic!("{dir}: expected one WAL range");
        };
        assert_eq!(range.tli, TimelineId::FIRST);
        assert_eq!(range.start, start);
        assert!(range.end > range.start);
    }
}

#[test]
fn checked_in_files_verify() {
    for (dir, _) in BACKUPS {
        let manifest = BackupManifest::parse(&manifest_bytes(dir)).unwrap();
        for path in FILES {
            assert_eq!(
                verify(&manifest, path, &data_file(dir, path)),
                Ok(()),
                "{dir}/{path}"
            );
        }
    }
}

#[test]
fn a_flipped_byte_in_a_file_fails_with_both_checksums() {
    for (dir, algorithm) in BACKUPS {
        let manifest = BackupManifest::parse(&manifest_bytes(dir)).unwrap();
        let path = "global/pg_control";
        let mut bytes = data_file(dir, path);
        bytes[4000] ^= 0x01;
        let expected = hex(&manifest
            .file(path)
            .unwrap()
            .checksum
            .as_ref()
            .unwrap()
            .digest);
        let actual = match algorithm {
            ChecksumAlgorithm::Crc32c => hex(&crc32c::crc32c(&bytes).to_le_bytes()),
            _ => hex(&Sha256::digest(&bytes)),
        };
        assert_ne!(expected, actual);
        assert_eq!(
            verify(&manifest, path, &bytes).unwrap_err().to_string(),
            format!(
                "file \"global/pg_control\": {algorithm} checksum is {actual} but the backup \
                 manifest says {expected} (the backup is damaged; take a new backup)"
            )
        );
    }
}

#[test]
fn a_missing_byte_fails_on_size() {
    let manifest = BackupManifest::parse(&manifest_bytes("crc32c")).unwrap();
    let bytes = data_file("crc32c", "global/pg_control");
    assert_eq!(
        verify(&manifest, "global/pg_control", &bytes[1..]),
        Err(ManifestError::SizeMismatch {
            path: "global/pg_control".into(),
            expected: 8192,
            actual: 8191
        })
    );
}

#[test]
fn a_flipped_byte_in_the_manifest_fails_its_checksum() {
    for (dir, _) in BACKUPS {
        let original = manifest_bytes(dir);
        let text = String::from_utf8(original.clone()).unwrap();
        let (_, recorded) = text.trim_end().rsplit_once(": \"").unwrap();
        let recorded = recorded.trim_end_matches("\"}").to_owned();
        // A size digit in the middle of the file list: still valid JSON, different content.
        let at = text.find("\"Size\": 8192").unwrap() + "\"Size\": ".len();
        let mut damaged = original.clone();
        damaged[at] = b'9';
        let covered = text.len() - text.trim_end().rsplit_once('\n').unwrap().1.len() - 1;
        let actual = hex(&Sha256::digest(&damaged[..covered]));
        assert_eq!(
            BackupManifest::parse(&damaged),
            Err(ManifestError::ChecksumMismatch {
                expected: recorded.clone(),
                actual: actual.clone()
            }),
            "{dir}"
        );
        assert_eq!(
            BackupManifest::parse(&damaged).unwrap_err().to_string(),
            format!(
                "backup manifest checksum mismatch: the manifest says {recorded} but its \
                 content hashes to {actual} (the backup_manifest is damaged; take a new backup)"
            )
        );
        // So does a flipped digit of the checksum itself.
        let mut damaged = original;
        let last = damaged.len() - 4;
        damaged[last] = if damaged[last] == b'0' { b'1' } else { b'0' };
        assert!(matches!(
            BackupManifest::parse(&damaged),
            Err(ManifestError::ChecksumMismatch { .. })
        ));
    }
}
