//! The identity of the server a source's archive belongs to, stored once under
//! `<source>/identity` so that WAL from another server is never mixed in.

use std::fmt;

use crate::archive::fields::{FieldError, Fields};
use crate::mysql::gtid::Uuid;
use crate::pg::WalSegSize;

/// The server behind a source, as recorded by the first write to its archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceIdentity {
    /// A PostgreSQL cluster, identified by its system identifier.
    Postgres {
        /// `pg_control`'s system identifier, fixed at `initdb`.
        system_id: u64,
        /// The cluster's WAL segment size, needed to read its WAL file names.
        wal_seg_size: WalSegSize,
    },
    /// A MariaDB replication stream, identified by its GTID domain. A promoted replica of
    /// the same domain continues it; `server_id` is the first server's.
    Mariadb {
        /// `@@gtid_domain_id` of the server's transactions.
        domain_id: u32,
        /// `@@server_id` of the first server archived.
        server_id: u32,
    },
    /// A MySQL server, identified by its `server_uuid`.
    Mysql {
        /// `@@server_uuid`.
        server_uuid: Uuid,
    },
}

/// An identity object whose content cannot be read. The texts state the cause only: the
/// caller adds the object's key and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The content is not UTF-8 text.
    #[error("identity is not UTF-8 text")]
    NotText,
    /// A line without `=`.
    #[error("identity line \"{line}\" is not key=value")]
    NotKeyValue {
        /// The offending line.
        line: String,
    },
    /// A key this version does not know for the kind of source.
    #[error("identity has unknown key \"{key}\"")]
    UnknownKey {
        /// The unknown key.
        key: String,
    },
    /// A key given twice.
    #[error("identity has key \"{key}\" twice")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// A required key is absent.
    #[error("identity lacks key \"{key}\"")]
    MissingKey {
        /// The missing key.
        key: &'static str,
    },
    /// A source kind this version does not know.
    #[error("identity has unknown kind \"{kind}\"")]
    UnknownKind {
        /// The unknown kind.
        kind: String,
    },
    /// A value that is not a decimal number.
    #[error("identity key \"{key}\" has value \"{value}\", not a decimal number")]
    NotANumber {
        /// The key.
        key: &'static str,
        /// The rejected value.
        value: String,
    },
    /// A value that is not a UUID.
    #[error("identity key \"{key}\" has value \"{value}\", not a UUID")]
    NotAUuid {
        /// The key.
        key: &'static str,
        /// The rejected value.
        value: String,
    },
    /// A segment size PostgreSQL would not use.
    #[error(
        "identity key \"wal_segment_size\" has value {bytes}, not a power of two from 1 MiB to 1 GiB"
    )]
    SegSize {
        /// The rejected size in bytes.
        bytes: u64,
    },
}

impl IdentityError {
    /// Whether a newer logship wrote the identity (a kind or key this one does not know):
    /// the fix is an upgrade, not a repair.
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            IdentityError::UnknownKey { .. } | IdentityError::UnknownKind { .. }
        )
    }
}

impl From<FieldError> for IdentityError {
    fn from(err: FieldError) -> IdentityError {
        match err {
            FieldError::NotKeyValue { line } => IdentityError::NotKeyValue { line },
            FieldError::DuplicateKey { key } => IdentityError::DuplicateKey { key },
            FieldError::MissingKey { key } => IdentityError::MissingKey { key },
            FieldError::UnknownKey { key } => IdentityError::UnknownKey { key },
            FieldError::NotANumber { key, value } => IdentityError::NotANumber { key, value },
        }
    }
}

const KIND: &str = "kind";
const POSTGRES: &str = "postgres";
const SYSTEM_ID: &str = "system_identifier";
const WAL_SEG_SIZE: &str = "wal_segment_size";
const MARIADB: &str = "mariadb";
const DOMAIN_ID: &str = "gtid_domain_id";
const SERVER_ID: &str = "server_id";
const MYSQL: &str = "mysql";
const SERVER_UUID: &str = "server_uuid";

impl SourceIdentity {
    /// The kind of server: `postgres`, `mariadb` or `mysql`.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceIdentity::Postgres { .. } => POSTGRES,
            SourceIdentity::Mariadb { .. } => MARIADB,
            SourceIdentity::Mysql { .. } => MYSQL,
        }
    }

    /// Whether `other` continues the archive recorded as `self`. A MariaDB source is its
    /// GTID domain, so another server of the domain (a promoted replica) qualifies; which
    /// of the domain's servers it is, is the switch records' business.
    pub fn same_source(&self, other: &SourceIdentity) -> bool {
        match (self, other) {
            (
                SourceIdentity::Mariadb { domain_id, .. },
                SourceIdentity::Mariadb {
                    domain_id: other, ..
                },
            ) => domain_id == other,
            _ => self == other,
        }
    }

    /// The identity as the text stored (before object framing), one `key=value` per line.
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            SourceIdentity::Postgres {
                system_id,
                wal_seg_size,
            } => format!(
                "{KIND}={POSTGRES}\n{SYSTEM_ID}={system_id}\n{WAL_SEG_SIZE}={}\n",
                wal_seg_size.bytes()
            )
            .into_bytes(),
            SourceIdentity::Mariadb {
                domain_id,
                server_id,
            } => format!("{KIND}={MARIADB}\n{DOMAIN_ID}={domain_id}\n{SERVER_ID}={server_id}\n")
                .into_bytes(),
            SourceIdentity::Mysql { server_uuid } => {
                format!("{KIND}={MYSQL}\n{SERVER_UUID}={server_uuid}\n").into_bytes()
            }
        }
    }

    /// Reads back what [`SourceIdentity::encode`] wrote; any unknown or missing key is an error.
    pub fn parse(content: &[u8]) -> Result<SourceIdentity, IdentityError> {
        let text = std::str::from_utf8(content).map_err(|_| IdentityError::NotText)?;
        let mut fields = Fields::read(text)?;
        let kind = fields.take(KIND)?;
        let identity = match kind {
            POSTGRES => SourceIdentity::Postgres {
                system_id: fields.number(SYSTEM_ID)?,
                wal_seg_size: WalSegSize::new(fields.number(WAL_SEG_SIZE)?)
                    .map_err(|err| IdentityError::SegSize { bytes: err.bytes })?,
            },
            MARIADB => SourceIdentity::Mariadb {
                domain_id: fields.number(DOMAIN_ID)?,
                server_id: fields.number(SERVER_ID)?,
            },
            MYSQL => {
                let value = fields.take(SERVER_UUID)?;
                SourceIdentity::Mysql {
                    server_uuid: value.parse().map_err(|_| IdentityError::NotAUuid {
                        key: SERVER_UUID,
                        value: value.to_owned(),
                    })?,
                }
            }
            other => {
                return Err(IdentityError::UnknownKind {
                    kind: other.to_owned(),
                });
            }
        };
        fields.finish()?;
        Ok(identity)
    }
}

impl fmt::Display for SourceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceIdentity::Postgres { system_id, .. } => write!(f, "postgres system {system_id}"),
            SourceIdentity::Mariadb { domain_id, .. } => {
                write!(f, "mariadb gtid domain {domain_id}")
            }
            SourceIdentity::Mysql { server_uuid } => write!(f, "mysql server {server_uuid}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &[u8] =
        b"kind=postgres\nsystem_identifier=7312345678901234567\nwal_segment_size=16777216\n";

    fn sample() -> SourceIdentity {
        SourceIdentity::Postgres {
            system_id: 7312345678901234567,
            wal_seg_size: WalSegSize::DEFAULT,
        }
    }

    #[test]
    fn encodes_and_displays() {
        assert_eq!(sample().encode(), SAMPLE);
        assert_eq!(sample().to_string(), "postgres system 7312345678901234567");
        assert_eq!(sample().kind(), "postgres");
    }

    #[test]
    fn mysql_and_mariadb_identities_round_trip() {
        let mariadb = SourceIdentity::Mariadb {
            domain_id: 7,
            server_id: 42,
        };
        assert_eq!(
            mariadb.encode(),
            b"kind=mariadb\ngtid_domain_id=7\nserver_id=42\n"
        );
        assert_eq!(SourceIdentity::parse(&mariadb.encode()), Ok(mariadb));
        assert_eq!(mariadb.to_string(), "mariadb gtid domain 7");
        let mysql = SourceIdentity::Mysql {
            server_uuid: "3e11fa47-71ca-11e1-9e33-c80aa9429562".parse().unwrap(),
        };
        assert_eq!(
            mysql.encode(),
            b"kind=mysql\nserver_uuid=3e11fa47-71ca-11e1-9e33-c80aa9429562\n"
        );
        assert_eq!(SourceIdentity::parse(&mysql.encode()), Ok(mysql));
        assert_eq!(mysql.kind(), "mysql");
    }

    #[test]
    fn parses_in_any_order() {
        assert_eq!(SourceIdentity::parse(SAMPLE), Ok(sample()));
        let shuffled =
            b"wal_segment_size=16777216\nkind=postgres\nsystem_identifier=7312345678901234567";
        assert_eq!(SourceIdentity::parse(shuffled), Ok(sample()));
    }

    #[test]
    fn rejects_bad_identities() {
        let parse = |s: &str| SourceIdentity::parse(s.as_bytes()).unwrap_err();
        assert_eq!(SourceIdentity::parse(b"\xff"), Err(IdentityError::NotText));
        assert_eq!(
            parse("kind=postgres\nsystem_identifier=1\nwal_segment_size=16777216\nport=5432\n"),
            IdentityError::UnknownKey { key: "port".into() }
        );
        assert_eq!(
            parse("kind=postgres\nwal_segment_size=16777216\n"),
            IdentityError::MissingKey {
                key: "system_identifier"
            }
        );
        assert_eq!(parse(""), IdentityError::MissingKey { key: "kind" });
        assert_eq!(
            parse("kind=oracle\nsid=x\n"),
            IdentityError::UnknownKind {
                kind: "oracle".into()
            }
        );
        assert_eq!(
            parse("kind=mysql\nserver_uuid=x\n"),
            IdentityError::NotAUuid {
                key: "server_uuid",
                value: "x".into()
            }
        );
        assert_eq!(
            parse("kind=mariadb\ngtid_domain_id=0\n"),
            IdentityError::MissingKey { key: "server_id" }
        );
        assert_eq!(
            parse("kind=mariadb\ngtid_domain_id=4294967296\nserver_id=1\n"),
            IdentityError::NotANumber {
                key: "gtid_domain_id",
                value: "4294967296".into()
            }
        );
        assert_eq!(
            parse("kind=postgres\nkind=postgres\n"),
            IdentityError::DuplicateKey { key: "kind".into() }
        );
        assert_eq!(
            parse("kind postgres\n"),
            IdentityError::NotKeyValue {
                line: "kind postgres".into()
            }
        );
        assert_eq!(
            parse("kind=postgres\nsystem_identifier=+1\nwal_segment_size=16777216\n"),
            IdentityError::NotANumber {
                key: "system_identifier",
                value: "+1".into()
            }
        );
        assert_eq!(
            parse("kind=postgres\nsystem_identifier=1\nwal_segment_size=1000\n"),
            IdentityError::SegSize { bytes: 1000 }
        );
    }

    /// Regression: the texts carried a fix of their own, and the agent's line wrapping them
    /// gave a second one.
    #[test]
    fn texts_state_the_cause_only() {
        let parse = |s: &str| SourceIdentity::parse(s.as_bytes()).unwrap_err();
        let cases = [
            (IdentityError::NotText, "identity is not UTF-8 text", false),
            (
                parse("kind postgres\n"),
                "identity line \"kind postgres\" is not key=value",
                false,
            ),
            (
                parse("kind=postgres\nsystem_identifier=1\nwal_segment_size=16777216\nport=1\n"),
                "identity has unknown key \"port\"",
                true,
            ),
            (
                parse("kind=postgres\nkind=postgres\n"),
                "identity has key \"kind\" twice",
                false,
            ),
            (parse(""), "identity lacks key \"kind\"", false),
            (
                parse("kind=oracle\n"),
                "identity has unknown kind \"oracle\"",
                true,
            ),
            (
                parse("kind=postgres\nsystem_identifier=x\nwal_segment_size=16777216\n"),
                "identity key \"system_identifier\" has value \"x\", not a decimal number",
                false,
            ),
            (
                parse("kind=postgres\nsystem_identifier=1\nwal_segment_size=1000\n"),
                "identity key \"wal_segment_size\" has value 1000, not a power of two from \
                 1 MiB to 1 GiB",
                false,
            ),
        ];
        for (err, text, unsupported) in cases {
            assert_eq!(err.to_string(), text);
            assert_eq!(err.is_unsupported(), unsupported, "{err}");
        }
    }

    #[test]
    fn a_mariadb_source_is_its_gtid_domain() {
        let mariadb = |domain_id, server_id| SourceIdentity::Mariadb {
            domain_id,
            server_id,
        };
        assert!(mariadb(7, 1).same_source(&mariadb(7, 2)));
        assert!(!mariadb(7, 1).same_source(&mariadb(8, 1)));
        assert!(sample().same_source(&sample()));
        assert!(!sample().same_source(&mariadb(7, 1)));
    }

    proptest! {
        #[test]
        fn round_trip(system_id in any::<u64>(), shift in 20u32..=30) {
            let identity = SourceIdentity::Postgres {
                system_id,
                wal_seg_size: WalSegSize::new(1 << shift).unwrap(),
            };
            prop_assert_eq!(SourceIdentity::parse(&identity.encode()), Ok(identity));
        }
    }
}
