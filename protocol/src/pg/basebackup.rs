//! `BASE_BACKUP` over the replication protocol, PostgreSQL 15 and later
//! (docs: "Streaming Replication Protocol"; server side: `basebackup_copy.c`).
//!
//! After the command the server sends a result set with the start LSN and timeline, a result
//! set with one row per tablespace, then one COPY OUT stream that carries every archive and
//! the manifest. Each CopyData in it starts with a type byte, decoded by
//! [`BackupStreamMessage::parse`]. CopyDone is followed by a result set with the end LSN and
//! timeline, then CommandComplete.

use bytes::Bytes;

/// PostgreSQL's limits for `MAX_RATE`, in kB/s.
const MAX_RATE_RANGE: std::ops::RangeInclusive<u32> = 32..=1_048_576;

/// What to ask of `BASE_BACKUP`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseBackupOptions {
    /// The label the server writes into `backup_label`.
    pub label: String,
    /// Whether to checkpoint at once rather than spread the checkpoint's I/O.
    pub fast_checkpoint: bool,
    /// A limit on the server's send rate in kB/s, clamped to PostgreSQL's 32..=1048576.
    pub max_rate_kbps: Option<u32>,
    /// Whether the server sends a `backup_manifest` after the archives.
    pub manifest: bool,
    /// The manifest's per-file checksum algorithm (`CRC32C`, `SHA256`, ...); the server's
    /// default (CRC32C) when `None`. Only sent with `manifest`.
    pub manifest_checksums: Option<String>,
    /// Whether the server estimates the total size up front and sends progress reports.
    pub progress: bool,
    /// Whether the server writes a `tablespace_map` file into the main archive.
    pub tablespace_map: bool,
}

/// The `BASE_BACKUP` command for `options`, to send as a simple query on a replication
/// connection.
///
/// It always says `WAIT false`: logship archives WAL itself and checks it separately, so the
/// server must not wait for its own `archive_command` to ship the backup's last segment.
pub fn base_backup_command(options: &BaseBackupOptions) -> String {
    let mut parts = vec![format!("LABEL {}", quote_literal(&options.label))];
    if options.progress {
        parts.push("PROGRESS".to_owned());
    }
    if options.fast_checkpoint {
        parts.push("CHECKPOINT 'fast'".to_owned());
    }
    parts.push("WAIT false".to_owned());
    if options.manifest {
        parts.push("MANIFEST 'yes'".to_owned());
        if let Some(algorithm) = &options.manifest_checksums {
            parts.push(format!("MANIFEST_CHECKSUMS {}", quote_literal(algorithm)));
        }
    }
    if options.tablespace_map {
        parts.push("TABLESPACE_MAP".to_owned());
    }
    if let Some(rate) = options.max_rate_kbps {
        let rate = rate.clamp(*MAX_RATE_RANGE.start(), *MAX_RATE_RANGE.end());
        parts.push(format!("MAX_RATE {rate}"));
    }
    format!("BASE_BACKUP ( {} )", parts.join(", "))
}

/// A string constant for the replication command grammar, where only `'` needs escaping
/// (by doubling). NUL is dropped: the query travels as a C string and would end there.
fn quote_literal(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for c in text.chars() {
        match c {
            '\'' => quoted.push_str("''"),
            '\0' => {}
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

/// The tablespace an archive of the stream holds, from its name: `base.tar` is the main data
/// directory (0), `<oid>.tar` the tablespace with that OID.
pub fn archive_tablespace(name: &str) -> Option<u32> {
    let stem = name.strip_suffix(".tar")?;
    if stem == "base" {
        return Some(0);
    }
    if stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().filter(|&oid| oid != 0)
}

/// One CopyData payload of the base backup stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackupStreamMessage {
    /// The start of an archive; the `Data` messages that follow belong to it.
    NewArchive {
        /// The archive's name: `base.tar` or `<tablespace oid>.tar`.
        name: String,
        /// The tablespace's directory on the server; `None` for the main data directory.
        tablespace_location: Option<String>,
    },
    /// Archive or manifest bytes, a slice of the received message.
    Data(Bytes),
    /// The server's count of bytes sent so far, over all archives.
    Progress(u64),
    /// The `Data` messages that follow are the `backup_manifest`.
    ManifestFollows,
}

/// A CopyData payload that is not a base backup stream message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BaseBackupError {
    /// The payload is empty, so it has no type byte.
    #[error(
        "empty base backup message: the server sent a CopyData with no type byte \
         (is the server PostgreSQL 15 or later?)"
    )]
    Empty,
    /// A type byte other than `n`, `d`, `p` or `m`.
    #[error(
        "unknown base backup message type 0x{byte:02X}: expected 'n', 'd', 'p' or 'm' \
         (is the server PostgreSQL 15 or later, and this logship recent enough for it?)"
    )]
    UnknownType {
        /// The type byte.
        byte: u8,
    },
    /// A known type whose body has the wrong shape.
    #[error(
        "malformed base backup '{kind}' message of {len} bytes: {reason} \
         (is the server PostgreSQL 15 or later?)"
    )]
    Malformed {
        /// The type byte, as a character.
        kind: char,
        /// The payload's length, type byte included.
        len: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl BackupStreamMessage {
    /// Decodes one CopyData payload; `Data` shares `payload`'s buffer instead of copying.
    pub fn parse(payload: Bytes) -> Result<BackupStreamMessage, BaseBackupError> {
        let (&kind, body) = payload.split_first().ok_or(BaseBackupError::Empty)?;
        let malformed = |reason| BaseBackupError::Malformed {
            kind: char::from(kind),
            len: payload.len(),
            reason,
        };
        match kind {
            b'n' => {
                let (name, rest) = c_string(body).ok_or_else(|| malformed("no archive name"))?;
                let (location, rest) =
                    c_string(rest).ok_or_else(|| malformed("no tablespace location"))?;
                if !rest.is_empty() {
                    return Err(malformed("bytes after the tablespace location"));
                }
                let name = String::from_utf8(name.to_vec())
                    .map_err(|_| malformed("archive name is not UTF-8"))?;
                let location = String::from_utf8(location.to_vec())
                    .map_err(|_| malformed("tablespace location is not UTF-8"))?;
                Ok(BackupStreamMessage::NewArchive {
                    name,
                    tablespace_location: Some(location).filter(|l| !l.is_empty()),
                })
            }
            b'd' => Ok(BackupStreamMessage::Data(payload.slice(1..))),
            b'p' => {
                let done: [u8; 8] = body
                    .try_into()
                    .map_err(|_| malformed("expected an 8-byte count"))?;
                Ok(BackupStreamMessage::Progress(u64::from_be_bytes(done)))
            }
            b'm' if body.is_empty() => Ok(BackupStreamMessage::ManifestFollows),
            b'm' => Err(malformed("expected no body")),
            byte => Err(BaseBackupError::UnknownType { byte }),
        }
    }
}

/// Splits a NUL-terminated string off the front of `bytes`.
fn c_string(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let nul = bytes.iter().position(|&b| b == 0)?;
    let (text, rest) = bytes.split_at_checked(nul)?;
    Some((text, rest.get(1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn options() -> BaseBackupOptions {
        BaseBackupOptions {
            label: "logship 2026-11-21T10:15:00Z".into(),
            fast_checkpoint: true,
            max_rate_kbps: None,
            manifest: true,
            manifest_checksums: None,
            progress: true,
            tablespace_map: true,
        }
    }

    #[test]
    fn command_with_every_option() {
        let opts = BaseBackupOptions {
            max_rate_kbps: Some(2048),
            manifest_checksums: Some("SHA256".into()),
            ..options()
        };
        assert_eq!(
            base_backup_command(&opts),
            "BASE_BACKUP ( LABEL 'logship 2026-11-21T10:15:00Z', PROGRESS, CHECKPOINT 'fast', \
             WAIT false, MANIFEST 'yes', MANIFEST_CHECKSUMS 'SHA256', TABLESPACE_MAP, \
             MAX_RATE 2048 )"
        );
    }

    #[test]
    fn command_with_no_options() {
        let opts = BaseBackupOptions {
            label: "x".into(),
            fast_checkpoint: false,
            max_rate_kbps: None,
            manifest: false,
            manifest_checksums: Some("SHA256".into()),
            progress: false,
            tablespace_map: false,
        };
        assert_eq!(
            base_backup_command(&opts),
            "BASE_BACKUP ( LABEL 'x', WAIT false )"
        );
    }

    #[test]
    fn label_quotes_are_doubled_and_nul_dropped() {
        let opts = BaseBackupOptions {
            label: "it's a 'test'\\\0".into(),
            ..options()
        };
        assert!(
            base_backup_command(&opts).starts_with("BASE_BACKUP ( LABEL 'it''s a ''test''\\', ")
        );
    }

    #[test]
    fn max_rate_is_clamped_to_postgres_limits() {
        for (asked, sent) in [
            (0, 32),
            (31, 32),
            (32, 32),
            (1_048_576, 1_048_576),
            (u32::MAX, 1_048_576),
        ] {
            let opts = BaseBackupOptions {
                max_rate_kbps: Some(asked),
                ..options()
            };
            assert!(
                base_backup_command(&opts).ends_with(&format!(", MAX_RATE {sent} )")),
                "{asked}"
            );
        }
    }

    #[test]
    fn archive_names() {
        assert_eq!(archive_tablespace("base.tar"), Some(0));
        assert_eq!(archive_tablespace("16390.tar"), Some(16390));
        for bad in [
            "base.tar.gz",
            "base",
            ".tar",
            "0.tar",
            "+5.tar",
            "4294967296.tar",
            "x.tar",
        ] {
            assert_eq!(archive_tablespace(bad), None, "{bad}");
        }
    }

    #[test]
    fn parses_new_archive() {
        let main = Bytes::from_static(b"nbase.tar\0\0");
        assert_eq!(
            BackupStreamMessage::parse(main),
            Ok(BackupStreamMessage::NewArchive {
                name: "base.tar".into(),
                tablespace_location: None
            })
        );
        let ts = Bytes::from_static(b"n16390.tar\0/srv/ts1\0");
        assert_eq!(
            BackupStreamMessage::parse(ts),
            Ok(BackupStreamMessage::NewArchive {
                name: "16390.tar".into(),
                tablespace_location: Some("/srv/ts1".into())
            })
        );
    }

    #[test]
    fn data_shares_the_buffer() {
        let payload = Bytes::from_static(b"dustar\0\0 tar bytes");
        let Ok(BackupStreamMessage::Data(data)) = BackupStreamMessage::parse(payload.clone())
        else {
            panic!("not data");
        };
        assert_eq!(&data[..], b"ustar\0\0 tar bytes");
        assert_eq!(data.as_ptr(), payload[1..].as_ptr());
        assert_eq!(
            BackupStreamMessage::parse(Bytes::from_static(b"d")),
            Ok(BackupStreamMessage::Data(Bytes::new()))
        );
    }

    #[test]
    fn parses_progress_and_manifest_marker() {
        let mut progress = vec![b'p'];
        progress.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(
            BackupStreamMessage::parse(Bytes::from(progress)),
            Ok(BackupStreamMessage::Progress(0x0102_0304_0506_0708))
        );
        assert_eq!(
            BackupStreamMessage::parse(Bytes::from_static(b"m")),
            Ok(BackupStreamMessage::ManifestFollows)
        );
    }

    #[test]
    fn rejects_malformed_messages() {
        assert_eq!(
            BackupStreamMessage::parse(Bytes::new()),
            Err(BaseBackupError::Empty)
        );
        assert_eq!(
            BackupStreamMessage::parse(Bytes::from_static(b"w\0\0")),
            Err(BaseBackupError::UnknownType { byte: b'w' })
        );
        let cases: [(&[u8], &str); 7] = [
            (b"nbase.tar", "no archive name"),
            (b"nbase.tar\0", "no tablespace location"),
            (b"nbase.tar\0\0x", "bytes after the tablespace location"),
            (b"n\xFF.tar\0\0", "archive name is not UTF-8"),
            (b"p\0\0\0\0\0\0\0", "expected an 8-byte count"),
            (b"p\0\0\0\0\0\0\0\0\0", "expected an 8-byte count"),
            (b"mx", "expected no body"),
        ];
        for (payload, reason) in cases {
            let err = BackupStreamMessage::parse(Bytes::from_static(payload)).unwrap_err();
            assert_eq!(
                err,
                BaseBackupError::Malformed {
                    kind: char::from(payload[0]),
                    len: payload.len(),
                    reason
                }
            );
        }
        assert_eq!(
            BackupStreamMessage::parse(Bytes::from_static(b"p\0"))
                .unwrap_err()
                .to_string(),
            "malformed base backup 'p' message of 2 bytes: expected an 8-byte count \
             (is the server PostgreSQL 15 or later?)"
        );
    }

    #[test]
    fn decodes_a_whole_stream() {
        // The CopyData payloads of a backup with one tablespace and a manifest, in the order
        // basebackup_copy.c sends them.
        let mut stream: Vec<Vec<u8>> = vec![
            b"nbase.tar\0\0".to_vec(),
            b"dfirst".to_vec(),
            b"dsecond".to_vec(),
        ];
        stream.push([&b"p"[..], &11u64.to_be_bytes()].concat());
        stream.push(b"n16390.tar\0/srv/ts1\0".to_vec());
        stream.push(b"dthird".to_vec());
        stream.push([&b"p"[..], &16u64.to_be_bytes()].concat());
        stream.push(b"m".to_vec());
        stream.push(b"d{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n".to_vec());
        let mut archives: Vec<(String, Vec<u8>)> = Vec::new();
        let mut manifest = None::<Vec<u8>>;
        let mut progress = 0;
        for payload in stream {
            match BackupStreamMessage::parse(Bytes::from(payload)).unwrap() {
                BackupStreamMessage::NewArchive { name, .. } => archives.push((name, Vec::new())),
                BackupStreamMessage::Data(data) => match (&mut manifest, archives.last_mut()) {
                    (Some(m), _) => m.extend_from_slice(&data),
                    (None, Some((_, bytes))) => bytes.extend_from_slice(&data),
                    (None, None) => panic!("data before any archive"),
                },
                BackupStreamMessage::Progress(done) => progress = done,
                BackupStreamMessage::ManifestFollows => manifest = Some(Vec::new()),
            }
        }
        assert_eq!(
            archives,
            [
                ("base.tar".to_owned(), b"firstsecond".to_vec()),
                ("16390.tar".to_owned(), b"third".to_vec())
            ]
        );
        assert_eq!(progress, 16);
        assert_eq!(
            manifest.unwrap(),
            b"{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n"
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = BackupStreamMessage::parse(Bytes::from(payload));
        }

        #[test]
        fn any_label_stays_one_literal(label in "\\PC{0,40}") {
            let opts = BaseBackupOptions { label: label.clone(), ..options() };
            let command = base_backup_command(&opts);
            let literal = command
                .strip_prefix("BASE_BACKUP ( LABEL '")
                .and_then(|rest| rest.split_once("', PROGRESS"))
                .map(|(literal, _)| literal)
                .unwrap();
            prop_assert_eq!(literal.replace("''", "'"), label.replace('\0', ""));
            prop_assert!(!literal.replace("''", "").contains('\''));
        }
    }
}
