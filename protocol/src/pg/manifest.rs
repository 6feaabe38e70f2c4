//! PostgreSQL's `backup_manifest` (versions 1 and 2, PostgreSQL 13 and later): the list of
//! files in a base backup with their sizes and checksums, and the WAL needed to restore it.
//! The reader follows `parse_manifest.c`; [`ChecksumVerifier`] checks a file's bytes against
//! its entry as they stream past.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::{Lsn, TimelineId};

/// The manifest versions this reader knows: 1 (PostgreSQL 13 to 16), 2 (adds the system
/// identifier, PostgreSQL 17 and later).
const VERSIONS: std::ops::RangeInclusive<u32> = 1..=2;

/// A per-file checksum algorithm of the manifest (`pg_checksum_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumAlgorithm {
    /// CRC-32C, PostgreSQL's default.
    Crc32c,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl ChecksumAlgorithm {
    /// The name PostgreSQL writes in `Checksum-Algorithm`.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Sha224 => "SHA224",
            ChecksumAlgorithm::Sha256 => "SHA256",
            ChecksumAlgorithm::Sha384 => "SHA384",
            ChecksumAlgorithm::Sha512 => "SHA512",
        }
    }

    /// The length of the algorithm's checksum in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Sha224 => 28,
            ChecksumAlgorithm::Sha256 => 32,
            ChecksumAlgorithm::Sha384 => 48,
            ChecksumAlgorithm::Sha512 => 64,
        }
    }

    /// Reads a name case-insensitively, as PostgreSQL does; `Some(None)` for `NONE`.
    fn parse(name: &str) -> Option<Option<ChecksumAlgorithm>> {
        let all = [
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Sha224,
            ChecksumAlgorithm::Sha256,
            ChecksumAlgorithm::Sha384,
            ChecksumAlgorithm::Sha512,
        ];
        if name.eq_ignore_ascii_case("NONE") {
            return Some(None);
        }
        all.into_iter()
            .find(|alg| alg.name().eq_ignore_ascii_case(name))
            .map(Some)
    }
}

impl fmt::Display for ChecksumAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A file's checksum as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileChecksum {
    /// How it was computed.
    pub algorithm: ChecksumAlgorithm,
    /// The checksum's bytes, in the manifest's order. For CRC-32C that is the server's native
    /// byte order of the 32-bit value (little-endian on x86-64 and ARM64).
    pub digest: Vec<u8>,
}

/// One file of the backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestFile {
    /// The path relative to the data directory; files of tablespaces are under
    /// `pg_tblspc/<oid>/`, while their tar archive names them relative to the tablespace.
    pub path: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The file's checksum, unless the backup was taken with `MANIFEST_CHECKSUMS 'NONE'`.
    pub checksum: Option<FileChecksum>,
}

/// A WAL range a restore of the backup must replay: `[start, end)` on timeline `tli`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WalRange {
    /// The timeline.
    pub tli: TimelineId,
    /// The first LSN needed.
    pub start: Lsn,
    /// The LSN where replay of this timeline may stop.
    pub end: Lsn,
}

/// A parsed `backup_manifest` whose own checksum has been verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupManifest {
    system_identifier: Option<u64>,
    files: Vec<ManifestFile>,
    wal_ranges: Vec<WalRange>,
    by_path: HashMap<String, usize>,
}

/// A manifest that cannot be trusted, or a file that does not match it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The manifest does not end in a line holding its checksum.
    #[error(
        "backup manifest has no checksum line: {reason} \
         (the backup_manifest is truncated or not PostgreSQL's)"
    )]
    NoChecksumLine {
        /// What is missing.
        reason: &'static str,
    },
    /// The manifest's content does not hash to its recorded checksum.
    #[error(
        "backup manifest checksum mismatch: the manifest says {expected} but its content hashes \
         to {actual} (the backup_manifest is damaged; take a new backup)"
    )]
    ChecksumMismatch {
        /// The SHA-256 the manifest records, in hex.
        expected: String,
        /// The SHA-256 of its content, in hex.
        actual: String,
    },
    /// A manifest version this reader does not know.
    #[error(
        "backup manifest has version {version} but this logship reads versions 1 and 2 \
         (the server is newer than this logship; upgrade it)"
    )]
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// The manifest is not JSON of the expected shape.
    #[error("backup manifest is not valid: {reason} (the backup_manifest is damaged)")]
    Invalid {
        /// What the JSON parser reported, with line and column.
        reason: String,
    },
    /// A file entry that cannot be used.
    #[error("backup manifest entry for file \"{path}\": {reason} (the backup_manifest is damaged)")]
    BadFile {
        /// The file's path as written (hex if it was encoded).
        path: String,
        /// What is wrong with the entry.
        reason: String,
    },
    /// A WAL range that cannot be used.
    #[error("backup manifest WAL range {index}: {reason} (the backup_manifest is damaged)")]
    BadWalRange {
        /// The range's position in the list, from 0.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A file with a size other than the manifest's.
    #[error(
        "file \"{path}\" is {actual} bytes but the backup manifest says {expected} \
         (the backup is damaged; take a new backup)"
    )]
    SizeMismatch {
        /// The file's path.
        path: String,
        /// The size the manifest records.
        expected: u64,
        /// The size seen.
        actual: u64,
    },
    /// A file with a checksum other than the manifest's.
    #[error(
        "file \"{path}\": {algorithm} checksum is {actual} but the backup manifest says \
         {expected} (the backup is damaged; take a new backup)"
    )]
    FileChecksumMismatch {
        /// The file's path.
        path: String,
        /// The algorithm.
        algorithm: ChecksumAlgorithm,
        /// The checksum the manifest records, in hex.
        expected: String,
        /// The checksum of the bytes seen, in hex.
        actual: String,
    },
}

/// The manifest's JSON, field for field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(rename = "PostgreSQL-Backup-Manifest-Version")]
    _version: u32,
    #[serde(rename = "System-Identifier", default)]
    system_identifier: Option<u64>,
    #[serde(rename = "Files")]
    files: Vec<RawFile>,
    #[serde(rename = "WAL-Ranges")]
    wal_ranges: Vec<RawWalRange>,
    // Already verified from the last line; required here so that it cannot be missing.
    #[serde(rename = "Manifest-Checksum")]
    _checksum: IgnoredAny,
}

/// Just the version, read first so that a newer layout gets a version error.
#[derive(Deserialize)]
struct RawVersion {
    #[serde(rename = "PostgreSQL-Backup-Manifest-Version")]
    version: u32,
}

/// The last line, read as the only field of an object.
#[derive(Deserialize)]
struct RawChecksumLine {
    #[serde(rename = "Manifest-Checksum")]
    checksum: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(rename = "Path")]
    path: Option<String>,
    #[serde(rename = "Encoded-Path")]
    encoded_path: Option<String>,
    #[serde(rename = "Size")]
    size: u64,
    #[serde(rename = "Last-Modified", default)]
    _last_modified: Option<IgnoredAny>,
    #[serde(rename = "Checksum-Algorithm")]
    algorithm: Option<String>,
    #[serde(rename = "Checksum")]
    checksum: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWalRange {
    #[serde(rename = "Timeline")]
    timeline: u32,
    #[serde(rename = "Start-LSN")]
    start: String,
    #[serde(rename = "End-LSN")]
    end: String,
}

impl BackupManifest {
    /// Parses a `backup_manifest`, verifying its SHA-256 before trusting any of it.
    pub fn parse(bytes: &[u8]) -> Result<BackupManifest, ManifestError> {
        verify_manifest_checksum(bytes)?;
        let invalid = |err: serde_json::Error| ManifestError::Invalid {
            reason: err.to_string(),
        };
        let RawVersion { version } = serde_json::from_slice(bytes).map_err(invalid)?;
        if !VERSIONS.contains(&version) {
            return Err(ManifestError::UnsupportedVersion { version });
        }
        let raw: RawManifest = serde_json::from_slice(bytes).map_err(invalid)?;
        let files = raw
            .files
            .into_iter()
            .map(RawFile::into_file)
            .collect::<Result<Vec<_>, _>>()?;
        let mut by_path = HashMap::with_capacity(files.len());
        for (index, file) in files.iter().enumerate() {
            if by_path.insert(file.path.clone(), index).is_some() {
                return Err(ManifestError::BadFile {
                    path: file.path.clone(),
                    reason: "the path is listed twice".to_owned(),
                });
            }
        }
        let wal_ranges = raw
            .wal_ranges
            .into_iter()
            .enumerate()
            .map(|(index, range)| range.into_range(index))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BackupManifest {
            system_identifier: raw.system_identifier,
            files,
            wal_ranges,
            by_path,
        })
    }

    /// The cluster's system identifier; only version 2 manifests (PostgreSQL 17+) record it.
    pub fn system_identifier(&self) -> Option<u64> {
        self.system_identifier
    }

    /// Every file of the backup, in the server's order.
    pub fn files(&self) -> &[ManifestFile] {
        &self.files
    }

    /// The WAL a restore must replay, newest timeline first.
    pub fn wal_ranges(&self) -> &[WalRange] {
        &self.wal_ranges
    }

    /// The entry for `path` (relative to the data directory), if the backup has that file.
    pub fn file(&self, path: &str) -> Option<&ManifestFile> {
        self.by_path.get(path).and_then(|&i| self.files.get(i))
    }
}

/// Checks the manifest's SHA-256, which covers everything before its last line; that line
/// holds the checksum (`parse_manifest.c`'s `verify_manifest_checksum`).
fn verify_manifest_checksum(bytes: &[u8]) -> Result<(), ManifestError> {
    let no_line = |reason| ManifestError::NoChecksumLine { reason };
    let body = bytes
        .strip_suffix(b"\n")
        .ok_or_else(|| no_line("the last line does not end in a newline"))?;
    let last_line_start = body
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|i| i + 1)
        .ok_or_else(|| no_line("it has fewer than 2 lines"))?;
    let (covered, last_line) = body
        .split_at_checked(last_line_start)
        .ok_or_else(|| no_line("it has fewer than 2 lines"))?;
    // The line reads `"Manifest-Checksum": "<hex>"}`: with a `{` before it, it is an object.
    let line_object = [b"{".as_slice(), last_line].concat();
    let line: RawChecksumLine = serde_json::from_slice(&line_object)
        .map_err(|_| no_line("the last line is not the \"Manifest-Checksum\" field"))?;
    let actual = Sha256::digest(covered);
    if decode_hex(&line.checksum).as_deref() != Some(actual.as_slice()) {
        return Err(ManifestError::ChecksumMismatch {
            expected: line.checksum,
            actual: encode_hex(&actual),
        });
    }
    Ok(())
}

impl RawFile {
    fn into_file(self) -> Result<ManifestFile, ManifestError> {
        let bad = |path: &str, reason: &str| ManifestError::BadFile {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let path = match (self.path, self.encoded_path) {
            (Some(path), None) => path,
            (None, Some(encoded)) => decode_hex(&encoded)
                .and_then(|raw| String::from_utf8(raw).ok())
                .ok_or_else(|| {
                    bad(
                        &encoded,
                        "the Encoded-Path is not hex of a UTF-8 name (rename the file in the \
                         data directory to UTF-8 and take a new backup)",
                    )
                })?,
            (Some(path), Some(_)) => return Err(bad(&path, "both Path and Encoded-Path")),
            (None, None) => return Err(bad("", "neither Path nor Encoded-Path")),
        };
        let named = self.algorithm.is_some();
        let algorithm = match self.algorithm.as_deref() {
            None => None,
            Some(name) => ChecksumAlgorithm::parse(name)
                .ok_or_else(|| bad(&path, &format!("unknown Checksum-Algorithm \"{name}\"")))?,
        };
        let checksum = match (algorithm, self.checksum) {
            (None, None) => None,
            // PostgreSQL writes NONE without a checksum, and accepts an empty one.
            (None, Some(digest)) if digest.is_empty() && named => None,
            (None, Some(_)) => return Err(bad(&path, "a Checksum without an algorithm")),
            (Some(_), None) => return Err(bad(&path, "a Checksum-Algorithm without a Checksum")),
            (Some(algorithm), Some(hex)) => {
                let digest = decode_hex(&hex)
                    .filter(|digest| digest.len() == algorithm.digest_len())
                    .ok_or_else(|| {
                        let reason = format!(
                            "Checksum \"{hex}\" is not {} hex digits of {algorithm}",
                            algorithm.digest_len() * 2
                        );
                        bad(&path, &reason)
                    })?;
                Some(FileChecksum { algorithm, digest })
            }
        };
        Ok(ManifestFile {
            path,
            size: self.size,
            checksum,
        })
    }
}

impl RawWalRange {
    fn into_range(self, index: usize) -> Result<WalRange, ManifestError> {
        let bad = |reason: String| ManifestError::BadWalRange { index, reason };
        let tli = TimelineId::new(self.timeline)
            .ok_or_else(|| bad("timeline 0 does not exist".into()))?;
        let start: Lsn = self.start.parse().map_err(|e| bad(format!("{e}")))?;
        let end: Lsn = self.end.parse().map_err(|e| bad(format!("{e}")))?;
        if end < start {
            return Err(bad(format!("end LSN {end} is before start LSN {start}")));
        }
        Ok(WalRange { tli, start, end })
    }
}

impl ManifestFile {
    /// A verifier for this file's bytes, to be fed the whole file in order.
    pub fn verifier(&self) -> ChecksumVerifier {
        let state = match &self.checksum {
            None => HashState::None,
            Some(checksum) => match checksum.algorithm {
                ChecksumAlgorithm::Crc32c => HashState::Crc32c(0),
                ChecksumAlgorithm::Sha224 => HashState::Sha224(Sha224::new()),
                ChecksumAlgorithm::Sha256 => HashState::Sha256(Sha256::new()),
                ChecksumAlgorithm::Sha384 => HashState::Sha384(Sha384::new()),
                ChecksumAlgorithm::Sha512 => HashState::Sha512(Sha512::new()),
            },
        };
        ChecksumVerifier {
            path: self.path.clone(),
            expected_size: self.size,
            expected: self.checksum.clone(),
            size: 0,
            state,
        }
    }
}

/// Checks one file's size and checksum against its manifest entry as its bytes stream past.
#[derive(Clone, Debug)]
pub struct ChecksumVerifier {
    path: String,
    expected_size: u64,
    expected: Option<FileChecksum>,
    size: u64,
    state: HashState,
}

/// A running checksum of one of the manifest's algorithms.
#[derive(Clone, Debug)]
enum HashState {
    None,
    Crc32c(u32),
    Sha224(Sha224),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl ChecksumVerifier {
    /// Feeds the next bytes of the file.
    pub fn update(&mut self, bytes: &[u8]) {
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        self.size = self.size.saturating_add(len);
        match &mut self.state {
            HashState::None => {}
            HashState::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, bytes),
            HashState::Sha224(h) => h.update(bytes),
            HashState::Sha256(h) => h.update(bytes),
            HashState::Sha384(h) => h.update(bytes),
            HashState::Sha512(h) => h.update(bytes),
        }
    }

    /// Checks the size, then the checksum, of everything fed.
    pub fn finish(self) -> Result<(), ManifestError> {
        if self.size != self.expected_size {
            return Err(ManifestError::SizeMismatch {
                path: self.path,
                expected: self.expected_size,
                actual: self.size,
            });
        }
        let Some(expected) = self.expected else {
            return Ok(());
        };
        let matches = |actual: &[u8]| actual == expected.digest.as_slice();
        let (matched, actual) = match self.state {
            HashState::None => return Ok(()),
            // PostgreSQL copies the CRC's memory into the manifest, so its byte order is the
            // server's; accept either order so that a big-endian server's backups verify too.
            HashState::Crc32c(crc) => (
                matches(&crc.to_le_bytes()) || matches(&crc.to_be_bytes()),
                crc.to_le_bytes().to_vec(),
            ),
            HashState::Sha224(h) => finish_digest(h, matches),
            HashState::Sha256(h) => finish_digest(h, matches),
            HashState::Sha384(h) => finish_digest(h, matches),
            HashState::Sha512(h) => finish_digest(h, matches),
        };
        if matched {
            return Ok(());
        }
        Err(ManifestError::FileChecksumMismatch {
            path: self.path,
            algorithm: expected.algorithm,
            expected: encode_hex(&expected.digest),
            actual: encode_hex(&actual),
        })
    }
}

/// Finishes a SHA-2 hash: whether it matches, and its bytes.
fn finish_digest<D: Digest>(hasher: D, matches: impl Fn(&[u8]) -> bool) -> (bool, Vec<u8>) {
    let digest = hasher.finalize();
    (matches(digest.as_slice()), digest.to_vec())
}

/// Lower-case hex, as PostgreSQL writes it.
fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decodes hex of either case; `None` for an odd length or a non-hex digit.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).ok()?;
            if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal manifest in the server's layout, with its checksum line computed.
    fn manifest(files: &str, wal: &str) -> Vec<u8> {
        let mut text = format!(
            "{{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [\n{files}\n],\n\
             \"WAL-Ranges\": [\n{wal}\n],\n"
        );
        let sum = encode_hex(&Sha256::digest(text.as_bytes()));
        text.push_str(&format!("\"Manifest-Checksum\": \"{sum}\"}}\n"));
        text.into_bytes()
    }

    const WAL: &str = r#"{ "Timeline": 1, "Start-LSN": "0/3000028", "End-LSN": "0/3000100" }"#;

    fn one_file(entry: &str) -> Result<BackupManifest, ManifestError> {
        BackupManifest::parse(&manifest(entry, WAL))
    }

    #[test]
    fn parses_a_synthetic_manifest() {
        let m = BackupManifest::parse(&manifest(
            concat!(
                r#"{ "Path": "PG_VERSION", "Size": 3, "Last-Modified": "2026-11-21 13:46:02 GMT", "#,
                r#""Checksum-Algorithm": "CRC32C", "Checksum": "8a744722" },"#,
                "\n",
                r#"{ "Encoded-Path": "676c6f62616c2f78", "Size": 0, "Last-Modified": "x", "#,
                r#""Checksum-Algorithm": "none" }"#
            ),
            WAL,
        ))
        .unwrap();
        assert_eq!(m.files().len(), 2);
        assert_eq!(
            m.file("PG_VERSION"),
            Some(&ManifestFile {
                path: "PG_VERSION".into(),
                size: 3,
                checksum: Some(FileChecksum {
                    algorithm: ChecksumAlgorithm::Crc32c,
                    digest: vec![0x8a, 0x74, 0x47, 0x22]
                })
            })
        );
        assert_eq!(m.file("global/x").unwrap().checksum, None);
        assert_eq!(m.file("global/y"), None);
        assert_eq!(
            m.wal_ranges(),
            [WalRange {
                tli: TimelineId::new(1).unwrap(),
                start: Lsn::new(0x300_0028),
                end: Lsn::new(0x300_0100)
            }]
        );
        assert_eq!(m.system_identifier(), None);
    }

    #[test]
    fn crc32c_matches_postgres_byte_order() {
        let file = ManifestFile {
            path: "PG_VERSION".into(),
            size: 3,
            checksum: Some(FileChecksum {
                algorithm: ChecksumAlgorithm::Crc32c,
                digest: vec![0x8a, 0x74, 0x47, 0x22],
            }),
        };
        let mut v = file.verifier();
        v.update(b"15\n");
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn version_2_records_the_system_identifier() {
        let text = String::from_utf8(manifest("", WAL)).unwrap();
        let body = text
            .split("\"Manifest-Checksum\"")
            .next()
            .unwrap()
            .replace(
                "\"PostgreSQL-Backup-Manifest-Version\": 1,\n",
                "\"PostgreSQL-Backup-Manifest-Version\": 2,\n\"System-Identifier\": 7312345678901234567,\n",
            )
            .replace("[\n\n]", "[\n]");
        let sum = encode_hex(&Sha256::digest(body.as_bytes()));
        let v2 = format!("{body}\"Manifest-Checksum\": \"{sum}\"}}\n");
        let m = BackupManifest::parse(v2.as_bytes()).unwrap();
        assert_eq!(m.system_identifier(), Some(7312345678901234567));
        assert!(m.files().is_empty());
    }

    #[test]
    fn refuses_unknown_versions() {
        let text = String::from_utf8(manifest("", WAL)).unwrap();
        let body = text
            .split("\"Manifest-Checksum\"")
            .next()
            .unwrap()
            .replace("Version\": 1,", "Version\": 3, \"New-Field\": true,");
        let sum = encode_hex(&Sha256::digest(body.as_bytes()));
        let v3 = format!("{body}\"Manifest-Checksum\": \"{sum}\"}}\n");
        assert_eq!(
            BackupManifest::parse(v3.as_bytes()),
            Err(ManifestError::UnsupportedVersion { version: 3 })
        );
    }

    #[test]
    fn refuses_bad_file_entries() {
        let cases = [
            (r#"{ "Size": 1 }"#, "neither Path nor Encoded-Path"),
            (
                r#"{ "Path": "a", "Encoded-Path": "61", "Size": 1 }"#,
                "both Path and Encoded-Path",
            ),
            (
                r#"{ "Path": "a", "Size": 1, "Checksum": "00" }"#,
                "a Checksum without an algorithm",
            ),
            (
                r#"{ "Path": "a", "Size": 1, "Checksum-Algorithm": "CRC32C" }"#,
                "a Checksum-Algorithm without a Checksum",
            ),
            (
                r#"{ "Path": "a", "Size": 1, "Checksum-Algorithm": "MD5", "Checksum": "00" }"#,
                "unknown Checksum-Algorithm \"MD5\"",
            ),
            (
                r#"{ "Path": "a", "Size": 1, "Checksum-Algorithm": "CRC32C", "Checksum": "0011" }"#,
                "Checksum \"0011\" is not 8 hex digits of CRC32C",
            ),
            (
                r#"{ "Path": "a", "Size": 1, "Checksum-Algorithm": "CRC32C", "Checksum": "0011223g" }"#,
                "Checksum \"0011223g\" is not 8 hex digits of CRC32C",
            ),
        ];
        for (entry, reason) in cases {
            match one_file(entry) {
                Err(ManifestError::BadFile { reason: r, .. }) => assert_eq!(r, reason, "{entry}"),
                other => panic!("{entry}: {other:?}"),
            }
        }
        assert_eq!(
            one_file(r#"{ "Encoded-Path": "ff", "Size": 1 }"#)
                .unwrap_err()
                .to_string(),
            "backup manifest entry for file \"ff\": the Encoded-Path is not hex of a UTF-8 name \
             (rename the file in the data directory to UTF-8 and take a new backup) \
             (the backup_manifest is damaged)"
        );
        assert!(matches!(
            one_file("{ \"Path\": \"a\", \"Size\": 1 },\n{ \"Path\": \"a\", \"Size\": 2 }"),
            Err(ManifestError::BadFile { .. })
        ));
        for invalid in [
            r#"{ "Path": "a", "Size": -1 }"#,
            r#"{ "Path": "a", "Size": "1" }"#,
            r#"{ "Path": "a", "Size": 1, "Mode": 420 }"#,
        ] {
            assert!(
                matches!(one_file(invalid), Err(ManifestError::Invalid { .. })),
                "{invalid}"
            );
        }
    }

    #[test]
    fn refuses_bad_wal_ranges() {
        for range in [
            r#"{ "Timeline": 0, "Start-LSN": "0/1", "End-LSN": "0/2" }"#,
            r#"{ "Timeline": 1, "Start-LSN": "1", "End-LSN": "0/2" }"#,
            r#"{ "Timeline": 1, "Start-LSN": "0/3", "End-LSN": "0/2" }"#,
        ] {
            assert!(
                matches!(
                    BackupManifest::parse(&manifest("", range)),
                    Err(ManifestError::BadWalRange { index: 0, .. })
                ),
                "{range}"
            );
        }
    }

    #[test]
    fn refuses_a_manifest_without_its_checksum_line() {
        let good = manifest("", WAL);
        let cases: [(&[u8], &str); 4] = [
            (
                &good[..good.len() - 1],
                "the last line does not end in a newline",
            ),
            (b"{}\n", "it has fewer than 2 lines"),
            (b"", "the last line does not end in a newline"),
            (
                b"{\n\"Other\": 1}\n",
                "the last line is not the \"Manifest-Checksum\" field",
            ),
        ];
        for (bytes, reason) in cases {
            assert_eq!(
                BackupManifest::parse(bytes),
                Err(ManifestError::NoChecksumLine { reason })
            );
        }
    }

    #[test]
    fn size_is_checked_before_checksum() {
        let file = ManifestFile {
            path: "global/pg_control".into(),
            size: 4,
            checksum: None,
        };
        let mut v = file.verifier();
        v.update(b"abc");
        assert_eq!(
            v.finish().unwrap_err().to_string(),
            "file \"global/pg_control\" is 3 bytes but the backup manifest says 4 \
             (the backup is damaged; take a new backup)"
        );
        let mut v = file.verifier();
        v.update(b"ab");
        v.update(b"cd");
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn hex_helpers() {
        assert_eq!(decode_hex("00aBff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(decode_hex(""), Some(vec![]));
        for bad in ["0", "0g", "+1", " 1", "é0"] {
            assert_eq!(decode_hex(bad), None, "{bad}");
        }
        assert_eq!(encode_hex(&[0, 0xab, 0xff]), "00abff");
    }
}
