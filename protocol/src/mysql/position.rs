//! Binlog file names and positions: `binlog.000042` and `binlog.000042:1234`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// The longest file name accepted (the servers' `FN_REFLEN` is 512, including the NUL).
const MAX_NAME_LEN: usize = 511;

/// A binlog file name such as `binlog.000042`: a base name, a dot and a decimal index.
///
/// Names compare by index only within one base name: `mysql-bin.000002` and
/// `binlog.000001` come from differently configured servers, and neither is "later".
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BinlogFileName {
    name: String,
    /// Byte length of the base name, before the last dot.
    base_len: usize,
    index: u32,
}

/// A string that is not a binlog file name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid binlog file name \"{input}\": expected a base name, a dot and a decimal index, \
     such as binlog.000042"
)]
pub struct BinlogFileNameError {
    /// The rejected input.
    pub input: String,
}

impl BinlogFileName {
    /// Parses and validates a name such as `binlog.000042`.
    pub fn new(name: &str) -> Result<BinlogFileName, BinlogFileNameError> {
        let bad = || BinlogFileNameError {
            input: name.to_owned(),
        };
        // The servers write names of printable ASCII; anything else (a path
        // separator, a NUL, a control byte) means the bytes are not a name.
        if name.len() > MAX_NAME_LEN
            || !name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
        {
            return Err(bad());
        }
        let (base, digits) = name.rsplit_once('.').ok_or_else(bad)?;
        if base.is_empty() || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let index = digits.parse::<u32>().map_err(|_| bad())?;
        Ok(BinlogFileName {
            name: name.to_owned(),
            base_len: base.len(),
            index,
        })
    }

    /// The whole name, as the server spells it.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The base name: `binlog` in `binlog.000042`.
    pub fn base(&self) -> &str {
        self.name.get(..self.base_len).unwrap_or_default()
    }

    /// The numeric index: 42 in `binlog.000042`.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The name of the file the server writes after this one (same base, index + 1,
    /// at least six digits as both servers write them), or `None` past `u32::MAX`.
    pub fn next(&self) -> Option<BinlogFileName> {
        self.with_index(self.index.checked_add(1)?)
    }

    /// The file of the same base numbered `index`, spelled as this one (at least six
    /// digits): `binlog.000002` for 2 and `binlog.000042`.
    pub fn with_index(&self, index: u32) -> Option<BinlogFileName> {
        let width = self.name.len() - self.base_len - 1;
        let name = format!("{}.{:0width$}", self.base(), index, width = width.max(6));
        BinlogFileName::new(&name).ok()
    }

    /// Whether both names share a base name, so that their order means something.
    pub fn same_base(&self, other: &BinlogFileName) -> bool {
        self.base() == other.base()
    }
}

impl PartialOrd for BinlogFileName {
    fn partial_cmp(&self, other: &BinlogFileName) -> Option<Ordering> {
        if !self.same_base(other) {
            return None;
        }
        // The spelling breaks ties so that `binlog.1` and `binlog.000001`,
        // which are different files, are not "equal".
        Some(
            self.index
                .cmp(&other.index)
                .then_with(|| self.name.cmp(&other.name)),
        )
    }
}

impl fmt::Display for BinlogFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl FromStr for BinlogFileName {
    type Err = BinlogFileNameError;

    fn from_str(s: &str) -> Result<BinlogFileName, BinlogFileNameError> {
        BinlogFileName::new(s)
    }
}

/// A byte position in a binlog file, printed `binlog.000042:1234`.
///
/// The offset of an event's end is what the servers call its `end_log_pos`; 4, just
/// past the magic, is the first position of every file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BinlogPos {
    file: BinlogFileName,
    offset: u64,
}

/// A string that is not a binlog position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid binlog position \"{input}\": expected FILE:OFFSET, such as binlog.000042:1234")]
pub struct BinlogPosError {
    /// The rejected input.
    pub input: String,
}

impl BinlogPos {
    /// The first event's offset in every binlog file: just past the 4-byte magic.
    pub const FIRST_EVENT: u64 = 4;

    /// The position `offset` bytes into `file`.
    pub fn new(file: BinlogFileName, offset: u64) -> BinlogPos {
        BinlogPos { file, offset }
    }

    /// The file.
    pub fn file(&self) -> &BinlogFileName {
        &self.file
    }

    /// The byte offset in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The same file at another offset.
    pub fn with_offset(&self, offset: u64) -> BinlogPos {
        BinlogPos {
            file: self.file.clone(),
            offset,
        }
    }
}

impl PartialOrd for BinlogPos {
    fn partial_cmp(&self, other: &BinlogPos) -> Option<Ordering> {
        match self.file.partial_cmp(&other.file)? {
            Ordering::Equal => Some(self.offset.cmp(&other.offset)),
            unequal => Some(unequal),
        }
    }
}

impl fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.offset)
    }
}

impl FromStr for BinlogPos {
    type Err = BinlogPosError;

    fn from_str(s: &str) -> Result<BinlogPos, BinlogPosError> {
        let bad = || BinlogPosError {
            input: s.to_owned(),
        };
        let (file, offset) = s.rsplit_once(':').ok_or_else(bad)?;
        if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let offset = offset.parse::<u64>().map_err(|_| bad())?;
        let file = BinlogFileName::new(file).map_err(|_| bad())?;
        Ok(BinlogPos { file, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(s: &str) -> BinlogFileName {
        BinlogFileName::new(s).unwrap()
    }

    #[test]
    fn splits_base_and_index() {
        let n = name("mysql-bin.000042");
        assert_eq!(n.base(), "mysql-bin");
        assert_eq!(n.index(), 42);
        assert_eq!(n.to_string(), "mysql-bin.000042");
        assert_eq!(name("my.host.bin.7").base(), "my.host.bin");
    }

    #[test]
    fn rejects_non_names_and_quotes_them() {
        for bad in [
            "",
            "binlog",
            "binlog.",
            ".000001",
            "binlog.00a001",
            "binlog.-1",
            "binlog.99999999999",
            "dir/binlog.000001",
            "bin log.000001",
            "binlog.000001\0",
        ] {
            let err = BinlogFileName::new(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("\"{bad}\"")), "{err}");
        }
    }

    #[test]
    fn orders_only_within_one_base() {
        assert!(name("binlog.000002") > name("binlog.000001"));
        assert!(name("binlog.1000000") > name("binlog.999999"));
        assert_eq!(
            name("binlog.000001").partial_cmp(&name("other.000002")),
            None
        );
        assert_ne!(name("binlog.1"), name("binlog.000001"));
        assert_ne!(
            name("binlog.1").partial_cmp(&name("binlog.000001")),
            Some(Ordering::Equal)
        );
    }

    #[test]
    fn next_keeps_the_width() {
        assert_eq!(name("binlog.000041").next().unwrap(), name("binlog.000042"));
        assert_eq!(
            name("binlog.999999").next().unwrap(),
            name("binlog.1000000")
        );
        assert_eq!(name("b.4294967295").next(), None);
        assert_eq!(
            name("binlog.000042").with_index(7),
            Some(name("binlog.000007"))
        );
        assert_eq!(
            name("mysql-bin.1234567").with_index(2),
            Some(name("mysql-bin.0000002"))
        );
    }

    #[test]
    fn positions_parse_display_and_compare() {
        let pos: BinlogPos = "binlog.000042:1234".parse().unwrap();
        assert_eq!(pos.file(), &name("binlog.000042"));
        assert_eq!(pos.offset(), 1234);
        assert_eq!(pos.to_string(), "binlog.000042:1234");
        let later: BinlogPos = "binlog.000043:4".parse().unwrap();
        assert!(later > pos);
        assert!(pos.with_offset(1235) > pos);
        let other: BinlogPos = "mysql-bin.000043:4".parse().unwrap();
        assert_eq!(pos.partial_cmp(&other), None);
        for bad in [
            "binlog.000042",
            "binlog.000042:",
            ":4",
            "binlog:4",
            "binlog.1:-4",
        ] {
            let err = bad.parse::<BinlogPos>().unwrap_err();
            assert_eq!(err.input, bad);
        }
    }

    proptest! {
        #[test]
        fn position_round_trip(base in "[a-z][a-z0-9_.-]{0,20}", index in any::<u32>(), offset in any::<u64>()) {
            let file = name(&format!("{base}.{index:06}"));
            prop_assert_eq!(file.index(), index);
            let pos = BinlogPos::new(file, offset);
            prop_assert_eq!(pos.to_string().parse::<BinlogPos>(), Ok(pos));
        }
    }
}
