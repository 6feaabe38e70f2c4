//! Object keys of a MySQL/MariaDB source's binlog: complete files, the pieces of the file
//! in progress, and the transaction index of each. Each key is built by
//! [`BinlogKey::format`] and read back by [`BinlogKey::parse`].
//!
//! ```text
//! <source>/binlog/<server %08X>/<file>                               a complete file
//! <source>/binlog/<server %08X>/<file>.partial.<start %08X>-<end %08X>  bytes [start, end)
//! <source>/binlog/<server %08X>/<file>.index.<start %08X>-<end %08X>    transactions ending there
//! <source>/binlog/<server %08X>/<file>.end.<len %08X>                  the file is complete
//! <source>/servers/<server %08X>.switch                               where server 2, 3, … took over
//! ```
//!
//! A file of at most [`SPAN_BYTES`] is stored complete as one object. A longer one stays a
//! chain of pieces, none of which crosses a multiple of [`SPAN_BYTES`], and its `.end.`
//! marker says how long the whole file is: so no writer or reader ever holds more than one
//! span of a file in memory.
//!
//! The switch record is built by [`switch_key`] and read back by [`parse_switch_key`].
//!
//! `<server>` numbers the servers the source has followed, from 1, so that a promoted
//! replica's files never share keys with the old primary's files of the same name.
//! Offsets are the file's own byte offsets, which binlog positions keep within 32 bits.

use std::fmt;

use crate::archive::key::{KeyError, SourceName, split_source};
use crate::archive::pieces::PieceRange;
use crate::mysql::position::BinlogFileName;
use crate::pg::segment::parse_hex8;

/// The number of a server in a source's history: 1 for the first, one more after each
/// switch to another server of the same replication stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerNo(u32);

impl ServerNo {
    /// The first server a source follows.
    pub const FIRST: ServerNo = ServerNo(1);

    /// A server number; 0 is not one.
    pub fn new(n: u32) -> Option<ServerNo> {
        (n != 0).then_some(ServerNo(n))
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The server after this one, if the number does not overflow.
    pub fn next(self) -> Option<ServerNo> {
        self.0.checked_add(1).map(ServerNo)
    }
}

impl fmt::Display for ServerNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}", self.0)
    }
}

/// Pieces of a binlog file never cross a multiple of this many bytes, and a file longer
/// than this is never stored as one object.
pub const SPAN_BYTES: u32 = 8 << 20;

/// What a binlog object under a source holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BinlogKey {
    /// A complete binlog file, byte for byte as the server wrote it.
    File {
        /// The server that wrote it.
        server: ServerNo,
        /// The file's name on that server.
        file: BinlogFileName,
    },
    /// Bytes `[range.start, range.end)` of the file in progress.
    Piece {
        /// The server that writes it.
        server: ServerNo,
        /// The file's name on that server.
        file: BinlogFileName,
        /// The bytes held.
        range: PieceRange,
    },
    /// The transactions whose commit ends within `range` of a file.
    Index {
        /// The server that wrote the file.
        server: ServerNo,
        /// The file's name on that server.
        file: BinlogFileName,
        /// The bytes of the file it covers.
        range: PieceRange,
    },
    /// An empty marker: the file, longer than [`SPAN_BYTES`], is complete at `len` bytes,
    /// and its pieces hold it.
    End {
        /// The server that wrote the file.
        server: ServerNo,
        /// The file's name on that server.
        file: BinlogFileName,
        /// The file's length.
        len: u32,
    },
}

const BINLOG: &str = "binlog";
const SERVERS: &str = "servers";
const SWITCH: &str = ".switch";
const PARTIAL: &str = ".partial.";
const INDEX: &str = ".index.";
const END: &str = ".end.";

impl BinlogKey {
    /// The key relative to the store root, e.g. `shop/binlog/00000001/binlog.000003`.
    pub fn format(&self, source: &SourceName) -> String {
        match self {
            BinlogKey::File { server, file } => format!("{}{file}", server_prefix(source, *server)),
            BinlogKey::Piece {
                server,
                file,
                range,
            } => format!(
                "{}{file}{PARTIAL}{:08X}-{:08X}",
                server_prefix(source, *server),
                range.start(),
                range.end()
            ),
            BinlogKey::Index {
                server,
                file,
                range,
            } => format!(
                "{}{file}{INDEX}{:08X}-{:08X}",
                server_prefix(source, *server),
                range.start(),
                range.end()
            ),
            BinlogKey::End { server, file, len } => {
                format!("{}{file}{END}{len:08X}", server_prefix(source, *server))
            }
        }
    }

    /// Reads a key relative to the store root back into its source and meaning.
    pub fn parse(key: &str) -> Result<(SourceName, BinlogKey), KeyError> {
        let unrecognized = || KeyError::Unrecognized {
            key: key.to_owned(),
        };
        let (source, rest) = split_source(key)?;
        let [BINLOG, server, name] = *rest.as_slice() else {
            return Err(unrecognized());
        };
        let server = parse_hex8(server)
            .and_then(ServerNo::new)
            .ok_or_else(unrecognized)?;
        let file_name = |name: &str| BinlogFileName::new(name).map_err(|_| unrecognized());
        let range = |text: &str| -> Result<PieceRange, KeyError> {
            let (start, end) = text.split_once('-').ok_or_else(unrecognized)?;
            let (Some(start), Some(end)) = (parse_hex8(start), parse_hex8(end)) else {
                return Err(unrecognized());
            };
            PieceRange::new(start, end).ok_or(KeyError::BadPieceRange {
                key: key.to_owned(),
                start,
                end,
                seg_bytes: u64::from(u32::MAX),
            })
        };
        let parsed = if let Some((file, text)) = name.split_once(PARTIAL) {
            BinlogKey::Piece {
                server,
                file: file_name(file)?,
                range: range(text)?,
            }
        } else if let Some((file, text)) = name.split_once(INDEX) {
            BinlogKey::Index {
                server,
                file: file_name(file)?,
                range: range(text)?,
            }
        } else if let Some((file, len)) = name.split_once(END) {
            BinlogKey::End {
                server,
                file: file_name(file)?,
                len: parse_hex8(len).ok_or_else(unrecognized)?,
            }
        } else {
            BinlogKey::File {
                server,
                file: file_name(name)?,
            }
        };
        Ok((source, parsed))
    }

    /// The server the object belongs to.
    pub fn server(&self) -> ServerNo {
        match self {
            BinlogKey::File { server, .. }
            | BinlogKey::Piece { server, .. }
            | BinlogKey::Index { server, .. }
            | BinlogKey::End { server, .. } => *server,
        }
    }

    /// The binlog file the object belongs to.
    pub fn file(&self) -> &BinlogFileName {
        match self {
            BinlogKey::File { file, .. }
            | BinlogKey::Piece { file, .. }
            | BinlogKey::Index { file, .. }
            | BinlogKey::End { file, .. } => file,
        }
    }
}

/// Every binlog object of `source`: `<source>/binlog/`.
pub fn binlog_root_prefix(source: &SourceName) -> String {
    format!("{source}/{BINLOG}/")
}

/// The binlog objects of one server: `<source>/binlog/<server %08X>/`.
pub fn server_prefix(source: &SourceName, server: ServerNo) -> String {
    format!("{source}/{BINLOG}/{server}/")
}

/// The pieces and indexes of one file on one server (not the complete file itself).
pub fn file_prefix(source: &SourceName, server: ServerNo, file: &BinlogFileName) -> String {
    format!("{}{file}.", server_prefix(source, server))
}

/// The key of the record of where `server` took over the stream:
/// `<source>/servers/<server %08X>.switch`.
pub fn switch_key(source: &SourceName, server: ServerNo) -> String {
    format!("{}{server}{SWITCH}", switches_prefix(source))
}

/// Reads a [`switch_key`] back into its source and server number.
pub fn parse_switch_key(key: &str) -> Result<(SourceName, ServerNo), KeyError> {
    let unrecognized = || KeyError::Unrecognized {
        key: key.to_owned(),
    };
    let (source, rest) = split_source(key)?;
    let [SERVERS, name] = *rest.as_slice() else {
        return Err(unrecognized());
    };
    let server = name
        .strip_suffix(SWITCH)
        .and_then(parse_hex8)
        .and_then(ServerNo::new)
        .ok_or_else(unrecognized)?;
    Ok((source, server))
}

/// Every switch record of `source`: `<source>/servers/`.
pub fn switches_prefix(source: &SourceName) -> String {
    format!("{source}/{SERVERS}/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shop() -> SourceName {
        SourceName::new("shop").unwrap()
    }

    fn file(name: &str) -> BinlogFileName {
        BinlogFileName::new(name).unwrap()
    }

    #[test]
    fn formats_every_layout() {
        let s = shop();
        let server = ServerNo::FIRST;
        assert_eq!(
            BinlogKey::File {
                server,
                file: file("binlog.000003")
            }
            .format(&s),
            "shop/binlog/00000001/binlog.000003"
        );
        assert_eq!(
            BinlogKey::Piece {
                server: ServerNo::new(0x1A).unwrap(),
                file: file("mysql-bin.000012"),
                range: PieceRange::new(0x100, 0x2_0000).unwrap(),
            }
            .format(&s),
            "shop/binlog/0000001A/mysql-bin.000012.partial.00000100-00020000"
        );
        assert_eq!(
            BinlogKey::Index {
                server,
                file: file("binlog.000003"),
                range: PieceRange::new(0, 0x1234).unwrap(),
            }
            .format(&s),
            "shop/binlog/00000001/binlog.000003.index.00000000-00001234"
        );
        assert_eq!(
            BinlogKey::End {
                server,
                file: file("binlog.000003"),
                len: 0x0123_4567,
            }
            .format(&s),
            "shop/binlog/00000001/binlog.000003.end.01234567"
        );
        assert_eq!(binlog_root_prefix(&s), "shop/binlog/");
        assert_eq!(
            file_prefix(&s, server, &file("binlog.000003")),
            "shop/binlog/00000001/binlog.000003."
        );
    }

    #[test]
    fn rejects_keys_outside_the_layout() {
        for bad in [
            "shop/binlog",
            "shop/binlog/00000001",
            "shop/binlog/00000000/binlog.000001",
            "shop/binlog/1/binlog.000001",
            "shop/binlog/0000000a/binlog.000001",
            "shop/binlog/00000001/binlog",
            "shop/binlog/00000001/binlog.000001/x",
            "shop/binlog/00000001/binlog.000001.partial.0-10",
            "shop/binlog/00000001/binlog.000001.partial.00000000_00000010",
            "shop/binlog/00000001/binlog.000001.index.0000000a-00000010",
            "shop/binlog/00000001/binlog.000001.end.10",
            "shop/binlog/00000001/binlog.000001.end.0000001g",
            "shop/wal/00000001/000000010000000000000003",
            "shop/identity",
        ] {
            assert_eq!(
                BinlogKey::parse(bad),
                Err(KeyError::Unrecognized { key: bad.into() }),
                "{bad}"
            );
        }
        assert!(matches!(
            BinlogKey::parse("shop/binlog/00000001/binlog.000001.partial.00000010-00000010"),
            Err(KeyError::BadPieceRange { .. })
        ));
    }

    #[test]
    fn switch_keys_name_the_server() {
        let key = switch_key(&shop(), ServerNo::new(2).unwrap());
        assert_eq!(key, "shop/servers/00000002.switch");
        assert_eq!(
            parse_switch_key(&key),
            Ok((shop(), ServerNo::new(2).unwrap()))
        );
        assert_eq!(switches_prefix(&shop()), "shop/servers/");
        for bad in [
            "shop/servers/00000000.switch",
            "shop/servers/0000000a.switch",
            "shop/servers/2.switch",
            "shop/servers/00000002",
            "shop/servers/00000002.switch/x",
            "shop/binlog/00000002.switch",
        ] {
            assert_eq!(
                parse_switch_key(bad),
                Err(KeyError::Unrecognized { key: bad.into() }),
                "{bad}"
            );
        }
    }

    fn keys() -> impl Strategy<Value = BinlogKey> {
        let server = (1u32..).prop_map(|n| ServerNo::new(n).unwrap());
        let file = ("[a-z][a-z0-9_-]{0,20}", 0u32..1_000_000)
            .prop_map(|(base, n)| BinlogFileName::new(&format!("{base}.{n:06}")).unwrap());
        let range = (0u32..u32::MAX, 1u32..=u32::MAX).prop_map(|(a, b)| {
            let (start, end) = if a < b { (a, b) } else { (b - 1, a + 1) };
            PieceRange::new(start, end).unwrap()
        });
        prop_oneof![
            (server.clone(), file.clone())
                .prop_map(|(server, file)| BinlogKey::File { server, file }),
            (server.clone(), file.clone(), range.clone()).prop_map(|(server, file, range)| {
                BinlogKey::Piece {
                    server,
                    file,
                    range,
                }
            }),
            (server.clone(), file.clone(), range).prop_map(|(server, file, range)| {
                BinlogKey::Index {
                    server,
                    file,
                    range,
                }
            }),
            (server, file, any::<u32>()).prop_map(|(server, file, len)| BinlogKey::End {
                server,
                file,
                len
            }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(key in keys()) {
            let text = key.format(&shop());
            prop_assert_eq!(BinlogKey::parse(&text), Ok((shop(), key)));
        }

        #[test]
        fn parse_never_panics(key in "\\PC{0,80}") {
            let _ = BinlogKey::parse(&key);
            let _ = parse_switch_key(&key);
        }

        #[test]
        fn switch_keys_round_trip(n in 1u32..) {
            let server = ServerNo::new(n).unwrap();
            prop_assert_eq!(parse_switch_key(&switch_key(&shop(), server)), Ok((shop(), server)));
        }
    }
}
