//! The switch record of a MariaDB source: where another server of the GTID domain (a
//! promoted replica) took over the stream, as a PostgreSQL `.history` file records where a
//! timeline branched off. Stored under [`crate::mysql::key::switch_key`], one per server
//! number from 2 on, before any binlog of that server.
//!
//! ```text
//! server_id=2
//! gtid_pos=0-1-1234
//! previous_end=binlog.000003:5678
//! start=binlog.000002:1234
//! ```

use crate::archive::fields::{FieldError, Fields};
use crate::mysql::gtid::GtidPos;
use crate::mysql::position::BinlogPos;

/// Where server `n` took over from server `n - 1`.
///
/// Both servers hold the transaction that ends at `previous_end` on the old one and at
/// `start` on the new one: the last transaction archived from the old server. The new
/// server's files are archived whole from `start`'s file on, but only what follows
/// `start` is new; the transactions before it are the old server's, already archived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSwitch {
    /// `@@server_id` of the server that took over.
    pub server_id: u32,
    /// The new server's GTID state at `start` (`BINLOG_GTID_POS(file, pos)`): every domain's
    /// last transaction before the new server's own stream begins.
    pub gtid_pos: GtidPos,
    /// On the previous server: the position just past the last transaction archived from it.
    pub previous_end: BinlogPos,
    /// On the new server: the position just past that same transaction, where its stream
    /// takes over.
    pub start: BinlogPos,
}

/// A switch record whose content cannot be read. The texts state the cause only: the
/// caller adds the object's key and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    /// The content is not UTF-8 text.
    #[error("switch record is not UTF-8 text")]
    NotText,
    /// A line, key or number that breaks the `key=value` rules.
    #[error("switch record {0}")]
    Field(#[from] FieldError),
    /// A value that is not what its key holds.
    #[error("switch record key \"{key}\" has value \"{value}\", not a {expected}")]
    BadValue {
        /// The key.
        key: &'static str,
        /// The rejected value.
        value: String,
        /// What the key holds.
        expected: &'static str,
    },
}

impl SwitchError {
    /// Whether a newer logship wrote the record (a key this one does not know).
    pub fn is_unsupported(&self) -> bool {
        matches!(self, SwitchError::Field(FieldError::UnknownKey { .. }))
    }
}

const SERVER_ID: &str = "server_id";
const GTID_POS: &str = "gtid_pos";
const PREVIOUS_END: &str = "previous_end";
const START: &str = "start";

impl ServerSwitch {
    /// The record as the text stored (before object framing), one `key=value` per line.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{SERVER_ID}={}\n{GTID_POS}={}\n{PREVIOUS_END}={}\n{START}={}\n",
            self.server_id, self.gtid_pos, self.previous_end, self.start
        )
        .into_bytes()
    }

    /// Reads back what [`ServerSwitch::encode`] wrote; any unknown or missing key is an error.
    pub fn parse(content: &[u8]) -> Result<ServerSwitch, SwitchError> {
        let text = std::str::from_utf8(content).map_err(|_| SwitchError::NotText)?;
        let mut fields = Fields::read(text)?;
        let server_id = fields.number(SERVER_ID)?;
        let gtid_pos = parsed(&mut fields, GTID_POS, "MariaDB GTID position")?;
        let previous_end = parsed(&mut fields, PREVIOUS_END, "binlog position")?;
        let start = parsed(&mut fields, START, "binlog position")?;
        fields.finish()?;
        Ok(ServerSwitch {
            server_id,
            gtid_pos,
            previous_end,
            start,
        })
    }
}

fn parsed<T: std::str::FromStr>(
    fields: &mut Fields<'_>,
    key: &'static str,
    expected: &'static str,
) -> Result<T, SwitchError> {
    let value = fields.take(key)?;
    value.parse().map_err(|_| SwitchError::BadValue {
        key,
        value: value.to_owned(),
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::gtid::Gtid;
    use crate::mysql::position::BinlogFileName;
    use proptest::prelude::*;

    const SAMPLE: &[u8] =
        b"server_id=2\ngtid_pos=0-1-1234\nprevious_end=binlog.000003:5678\nstart=binlog.000002:1234\n";

    fn pos(text: &str) -> BinlogPos {
        text.parse().unwrap()
    }

    #[test]
    fn encodes_the_documented_text() {
        let switch = ServerSwitch {
            server_id: 2,
            gtid_pos: "0-1-1234".parse().unwrap(),
            previous_end: pos("binlog.000003:5678"),
            start: pos("binlog.000002:1234"),
        };
        assert_eq!(switch.encode(), SAMPLE);
        assert_eq!(ServerSwitch::parse(SAMPLE), Ok(switch));
    }

    #[test]
    fn refuses_damaged_records() {
        let parse = |s: &str| ServerSwitch::parse(s.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            parse("server_id=2\ngtid_pos=0-1-1\nprevious_end=binlog.000003:5678\n"),
            "switch record lacks key \"start\""
        );
        assert_eq!(
            parse("server_id=x\n"),
            "switch record key \"server_id\" has value \"x\", not a decimal number"
        );
        assert_eq!(
            parse(
                "server_id=2\ngtid_pos=0-1\nprevious_end=binlog.000003:5678\nstart=binlog.000002:4\n"
            ),
            "switch record key \"gtid_pos\" has value \"0-1\", not a MariaDB GTID position"
        );
        assert_eq!(
            parse("server_id=2\ngtid_pos=0-1-1\nprevious_end=binlog:5678\nstart=binlog.000002:4\n"),
            "switch record key \"previous_end\" has value \"binlog:5678\", not a binlog position"
        );
        let newer = ServerSwitch::parse(
            b"server_id=2\ngtid_pos=0-1-1\nprevious_end=binlog.000003:5\nstart=binlog.000002:4\nreason=x\n",
        )
        .unwrap_err();
        assert_eq!(
            newer.to_string(),
            "switch record has unknown key \"reason\""
        );
        assert!(newer.is_unsupported());
        assert_eq!(
            ServerSwitch::parse(b"\xff"),
            Err(SwitchError::NotText),
            "not text"
        );
    }

    proptest! {
        #[test]
        fn round_trip(
            server_id in any::<u32>(),
            seqs in proptest::collection::btree_map(any::<u32>(), (any::<u32>(), any::<u64>()), 0..4),
            ends in (1u32..1_000_000, any::<u32>(), 1u32..1_000_000, any::<u32>()),
        ) {
            let mut gtid_pos = GtidPos::new();
            for (domain, (server, seq)) in seqs {
                gtid_pos.update(Gtid::new(domain, server, seq));
            }
            let file = |n| BinlogFileName::new(&format!("binlog.{n:06}")).unwrap();
            let switch = ServerSwitch {
                server_id,
                gtid_pos,
                previous_end: BinlogPos::new(file(ends.0), u64::from(ends.1)),
                start: BinlogPos::new(file(ends.2), u64::from(ends.3)),
            };
            prop_assert_eq!(ServerSwitch::parse(&switch.encode()), Ok(switch));
        }

        #[test]
        fn parse_never_panics(content in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ServerSwitch::parse(&content);
        }
    }
}
