//! Global transaction ids of both servers.
//!
//! - MariaDB: a GTID is `domain-server-seq` ([`Gtid`]), and a replication position is
//!   one GTID per domain ([`GtidPos`], the value of `gtid_binlog_pos` or
//!   `@slave_connect_state`).
//! - MySQL: a GTID is `uuid:gno`, or `uuid:tag:gno` from 8.4 on ([`MysqlGtid`]), and
//!   servers exchange sets of them ([`GtidSet`], `gtid_executed`), as text and in the
//!   binary encoding of `Gtid_set::encode` (COM_BINLOG_DUMP_GTID, PREVIOUS_GTIDS).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::cursor::{Cursor, put_varlen};

/// A MariaDB global transaction id, printed `domain-server-seq` such as `0-1-42`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gtid {
    domain: u32,
    server_id: u32,
    seq: u64,
}

impl Gtid {
    /// The GTID `domain-server_id-seq`.
    pub const fn new(domain: u32, server_id: u32, seq: u64) -> Gtid {
        Gtid {
            domain,
            server_id,
            seq,
        }
    }

    /// The replication domain (`gtid_domain_id`).
    pub const fn domain(self) -> u32 {
        self.domain
    }

    /// The server that first logged the transaction.
    pub const fn server_id(self) -> u32 {
        self.server_id
    }

    /// The sequence number within the domain.
    pub const fn seq(self) -> u64 {
        self.seq
    }
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.seq)
    }
}

/// A string that is not a GTID, GTID position or GTID set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} \"{input}\": {reason}")]
pub struct GtidParseError {
    /// What was expected: "MariaDB GTID", "MariaDB GTID position", "MySQL GTID set"...
    pub what: &'static str,
    /// The rejected input.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

fn parse_error(what: &'static str, input: &str, reason: impl Into<String>) -> GtidParseError {
    GtidParseError {
        what,
        input: input.to_owned(),
        reason: reason.into(),
    }
}

/// Decimal digits only: no sign, no spaces, no empty string.
fn parse_decimal<T: FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl FromStr for Gtid {
    type Err = GtidParseError;

    fn from_str(s: &str) -> Result<Gtid, GtidParseError> {
        let bad = || {
            parse_error(
                "MariaDB GTID",
                s,
                "expected DOMAIN-SERVER-SEQ, such as 0-1-42",
            )
        };
        let mut parts = s.split('-');
        let (Some(d), Some(srv), Some(seq), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(Gtid {
            domain: parse_decimal(d).ok_or_else(bad)?,
            server_id: parse_decimal(srv).ok_or_else(bad)?,
            seq: parse_decimal(seq).ok_or_else(bad)?,
        })
    }
}

/// A MariaDB GTID position: the last GTID of each domain, printed comma-separated in
/// domain order (`0-1-42,1-2-7`); empty when nothing has been logged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GtidPos {
    domains: BTreeMap<u32, Gtid>,
}

impl GtidPos {
    /// The empty position (no domain has logged anything).
    pub fn new() -> GtidPos {
        GtidPos::default()
    }

    /// Records `gtid` as its domain's latest, returning the GTID it replaces.
    ///
    /// This is how the server moves `gtid_binlog_pos`: the domain's entry is replaced,
    /// whatever its server id. A sequence number that goes back is stored as given;
    /// whether that is an error is the caller's policy (`gtid_strict_mode`).
    pub fn update(&mut self, gtid: Gtid) -> Option<Gtid> {
        self.domains.insert(gtid.domain, gtid)
    }

    /// The latest GTID of `domain`.
    pub fn get(&self, domain: u32) -> Option<Gtid> {
        self.domains.get(&domain).copied()
    }

    /// Whether `gtid` is at or before this position in its domain.
    pub fn covers(&self, gtid: Gtid) -> bool {
        self.get(gtid.domain).is_some_and(|g| g.seq >= gtid.seq)
    }

    /// The GTIDs, one per domain, in domain order.
    pub fn iter(&self) -> impl Iterator<Item = Gtid> + '_ {
        self.domains.values().copied()
    }

    /// Whether no domain has an entry.
    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, gtid) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{gtid}")?;
        }
        Ok(())
    }
}

impl FromStr for GtidPos {
    type Err = GtidParseError;

    fn from_str(s: &str) -> Result<GtidPos, GtidParseError> {
        let what = "MariaDB GTID position";
        let mut pos = GtidPos::new();
        if s.trim().is_empty() {
            return Ok(pos);
        }
        for part in s.split(',') {
            let gtid: Gtid = part
                .trim()
                .parse()
                .map_err(|e: GtidParseError| parse_error(what, s, e.reason))?;
            // The server refuses a position naming a domain twice: which would win?
            if pos.update(gtid).is_some() {
                return Err(parse_error(
                    what,
                    s,
                    format!("domain {} appears more than once", gtid.domain),
                ));
            }
        }
        Ok(pos)
    }
}

/// A server UUID (MySQL's `server_uuid`, the source id of its GTIDs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid([u8; 16]);

impl Uuid {
    /// The UUID with these 16 bytes, in the order MySQL stores them.
    pub const fn from_bytes(bytes: [u8; 16]) -> Uuid {
        Uuid(bytes)
    }

    /// The 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Uuid {
    type Err = GtidParseError;

    /// Accepts the hyphenated form (`3e11fa47-71ca-11e1-9e33-c80aa9429562`), in either case.
    fn from_str(s: &str) -> Result<Uuid, GtidParseError> {
        let bad = || parse_error("UUID", s, "expected 8-4-4-4-12 hexadecimal digits");
        let groups: Vec<&str> = s.split('-').collect();
        if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
            return Err(bad());
        }
        let hex: String = groups.concat();
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
            if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Uuid(out))
    }
}

/// A MySQL 8.4 GTID tag: 1 to 32 characters of `[a-z0-9_]`, not starting with a digit,
/// stored lowercase as the server does.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

/// `mysql::gtid::tag_max_length`.
const TAG_MAX_LEN: usize = 32;

impl Tag {
    /// Validates a tag, folding it to lowercase.
    pub fn new(s: &str) -> Result<Tag, GtidParseError> {
        let lower = s.to_ascii_lowercase();
        let ok = (1..=TAG_MAX_LEN).contains(&lower.len())
            && lower
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !lower.as_bytes().first().is_some_and(u8::is_ascii_digit);
        if ok {
            Ok(Tag(lower))
        } else {
            Err(parse_error(
                "GTID tag",
                s,
                "expected 1 to 32 letters, digits or underscores, not starting with a digit",
            ))
        }
    }

    /// The tag text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A MySQL transaction source id: a server UUID and, from 8.4 on, an optional tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tsid {
    uuid: Uuid,
    tag: Option<Tag>,
}

impl Tsid {
    /// The source `uuid`, tagged or not.
    pub fn new(uuid: Uuid, tag: Option<Tag>) -> Tsid {
        Tsid { uuid, tag }
    }

    /// The server UUID.
    pub fn uuid(&self) -> Uuid {
        self.uuid
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }
}

/// One MySQL GTID, printed `uuid:gno` or `uuid:tag:gno`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MysqlGtid {
    tsid: Tsid,
    gno: u64,
}

impl MysqlGtid {
    /// The GTID number `gno` of `tsid` (valid numbers are 1 to 2^63 - 2).
    pub fn new(tsid: Tsid, gno: u64) -> MysqlGtid {
        MysqlGtid { tsid, gno }
    }

    /// The source id.
    pub fn tsid(&self) -> &Tsid {
        &self.tsid
    }

    /// The transaction number within the source.
    pub fn gno(&self) -> u64 {
        self.gno
    }
}

impl fmt::Display for MysqlGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.tsid.uuid)?;
        if let Some(tag) = &self.tsid.tag {
            write!(f, ":{tag}")?;
        }
        write!(f, ":{}", self.gno)
    }
}

/// The largest GNO plus one (`GNO_END`, `INT64_MAX`): intervals end at most here.
const GNO_END: u64 = i64::MAX as u64;

/// A set of MySQL GTIDs (`gtid_executed`), printed `uuid:1-5:7,uuid2:tag:1-3`.
///
/// Intervals are kept as the server keeps them: sorted, disjoint, not adjacent, each
/// `start..end` with `end` exclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GtidSet {
    sources: BTreeMap<Tsid, Vec<(u64, u64)>>,
}

/// A binary GTID set (`Gtid_set::encode` bytes) that cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid encoded GTID set at byte {at}: {reason}")]
pub struct GtidSetDecodeError {
    /// Where in the encoding the problem is.
    pub at: usize,
    /// What is wrong.
    pub reason: &'static str,
}

/// `Gtid_format`: the top byte of the encoded source count.
const FORMAT_UNTAGGED: u8 = 0;
const FORMAT_TAGGED: u8 = 1;

impl GtidSet {
    /// The empty set.
    pub fn new() -> GtidSet {
        GtidSet::default()
    }

    /// Whether the set has no GTIDs.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Whether `gtid` is in the set.
    pub fn contains(&self, gtid: &MysqlGtid) -> bool {
        self.sources.get(&gtid.tsid).is_some_and(|ivs| {
            ivs.iter()
                .any(|&(start, end)| start <= gtid.gno && gtid.gno < end)
        })
    }

    /// Adds `gtid`; `false` if it was already there or its number is out of range.
    pub fn insert(&mut self, gtid: &MysqlGtid) -> bool {
        if self.contains(gtid) {
            return false;
        }
        self.add_interval(gtid.tsid.clone(), gtid.gno, gtid.gno.saturating_add(1))
    }

    /// Adds the numbers `start..end` (end exclusive) of `tsid`; `false` if the range is
    /// empty or outside 1..2^63-1, and nothing is added then.
    pub fn add_interval(&mut self, tsid: Tsid, start: u64, end: u64) -> bool {
        if start == 0 || end <= start || end > GNO_END {
            return false;
        }
        let ivs = self.sources.entry(tsid).or_default();
        ivs.push((start, end));
        ivs.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
        for &(s, e) in ivs.iter() {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        *ivs = merged;
        true
    }

    /// Adds every GTID of `other`.
    pub fn union_with(&mut self, other: &GtidSet) {
        for (tsid, ivs) in &other.sources {
            for &(s, e) in ivs {
                self.add_interval(tsid.clone(), s, e);
            }
        }
    }

    /// Each source with its intervals (`start..end`, end exclusive), in source order.
    pub fn iter(&self) -> impl Iterator<Item = (&Tsid, &[(u64, u64)])> + '_ {
        self.sources.iter().map(|(t, ivs)| (t, ivs.as_slice()))
    }

    /// Appends the set in `Gtid_set::encode`'s format: the SID block of
    /// COM_BINLOG_DUMP_GTID and the body of PREVIOUS_GTIDS.
    ///
    /// Untagged sets use the classic layout (`n_sids` u64; per source the 16-byte
    /// UUID, `n_intervals` u64 and u64 start/end pairs). A set with any tag uses
    /// 8.4's tagged layout, as the server does: the count's top and bottom bytes are
    /// 1 and each UUID is followed by its tag (a varlen length and the bytes).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let tagged = self.sources.keys().any(|t| t.tag.is_some());
        let n = self.sources.len() as u64;
        let count = if tagged {
            (u64::from(FORMAT_TAGGED) << 56) | (n << 8) | u64::from(FORMAT_TAGGED)
        } else {
            n
        };
        out.extend_from_slice(&count.to_le_bytes());
        for (tsid, ivs) in &self.sources {
            out.extend_from_slice(tsid.uuid.as_bytes());
            if tagged {
                let tag = tsid.tag.as_ref().map(Tag::as_str).unwrap_or_default();
                put_varlen(out, tag.len() as u64);
                out.extend_from_slice(tag.as_bytes());
            }
            out.extend_from_slice(&(ivs.len() as u64).to_le_bytes());
            for &(s, e) in ivs {
                out.extend_from_slice(&s.to_le_bytes());
                out.extend_from_slice(&e.to_le_bytes());
            }
        }
    }

    /// The length of [`GtidSet::encode`]'s output.
    pub fn encoded_len(&self) -> usize {
        let mut out = Vec::new();
        self.encode(&mut out);
        out.len()
    }

    /// Decodes a set from the front of `buf`, returning it and the bytes it took.
    /// Intervals must be increasing and non-empty, as `add_gtid_encoding` demands.
    pub fn decode(buf: &[u8]) -> Result<(GtidSet, usize), GtidSetDecodeError> {
        let mut c = Cursor::new(buf);
        let err = |c: &Cursor<'_>, reason| GtidSetDecodeError {
            at: c.position(),
            reason,
        };
        let count = c.u64().ok_or_else(|| err(&c, "truncated source count"))?;
        let format = (count >> 56) as u8;
        let n_sids = match format {
            FORMAT_UNTAGGED => count & ((1 << 56) - 1),
            FORMAT_TAGGED => (count & 0x00FF_FFFF_FFFF_FF00) >> 8,
            _ => return Err(err(&c, "unknown GTID set format")),
        };
        let mut set = GtidSet::new();
        for _ in 0..n_sids {
            let uuid = c
                .array::<16>()
                .ok_or_else(|| err(&c, "truncated source UUID"))?;
            let mut tag = None;
            if format == FORMAT_TAGGED {
                let len = c.varlen().ok_or_else(|| err(&c, "truncated tag length"))?;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&l| l <= TAG_MAX_LEN)
                    .ok_or_else(|| err(&c, "tag longer than 32 bytes"))?;
                let text = c.bytes(len).ok_or_else(|| err(&c, "truncated tag"))?;
                if len > 0 {
                    let text = std::str::from_utf8(text).map_err(|_| err(&c, "invalid tag"))?;
                    tag = Some(Tag::new(text).map_err(|_| err(&c, "invalid tag"))?);
                }
            }
            let tsid = Tsid::new(Uuid(uuid), tag);
            let n_iv = c.u64().ok_or_else(|| err(&c, "truncated interval count"))?;
            // Checked against what is left before allocating or looping.
            if n_iv > (c.remaining() / 16) as u64 {
                return Err(err(&c, "more intervals than bytes"));
            }
            let mut last = 0;
            for _ in 0..n_iv {
                let (Some(s), Some(e)) = (c.u64(), c.u64()) else {
                    return Err(err(&c, "truncated interval"));
                };
                if s <= last || e <= s || e > GNO_END {
                    return Err(err(&c, "intervals out of order or out of range"));
                }
                last = e;
                set.add_interval(tsid.clone(), s, e);
            }
        }
        Ok((set, c.position()))
    }
}

impl fmt::Display for GtidSet {
    /// The compact form `uuid:1-5:7:tag:1-3,uuid2:1-3`: untagged intervals of a UUID
    /// first, then each tag's. (The server itself separates UUIDs with ",\n".)
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut current: Option<Uuid> = None;
        for (tsid, ivs) in &self.sources {
            if current != Some(tsid.uuid) {
                if current.is_some() {
                    f.write_str(",")?;
                }
                write!(f, "{}", tsid.uuid)?;
                current = Some(tsid.uuid);
            }
            if let Some(tag) = &tsid.tag {
                write!(f, ":{tag}")?;
            }
            for &(s, e) in ivs {
                if e == s + 1 {
                    write!(f, ":{s}")?;
                } else {
                    write!(f, ":{s}-{}", e - 1)?;
                }
            }
        }
        Ok(())
    }
}

impl FromStr for GtidSet {
    type Err = GtidParseError;

    /// Parses `gtid_executed` text: whitespace (the server prints ",\n" between
    /// UUIDs) is ignored, and each UUID is followed by intervals (`N` or `N-M`) and
    /// tags, a tag applying to the intervals after it.
    fn from_str(s: &str) -> Result<GtidSet, GtidParseError> {
        let what = "MySQL GTID set";
        let text: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let mut set = GtidSet::new();
        if text.is_empty() {
            return Ok(set);
        }
        for source in text.split(',') {
            let mut parts = source.split(':');
            let uuid: Uuid = parts
                .next()
                .unwrap_or_default()
                .parse()
                .map_err(|e: GtidParseError| parse_error(what, s, e.reason))?;
            let mut tag: Option<Tag> = None;
            let mut any = false;
            for part in parts {
                if part.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
                    let (start, end) = match part.split_once('-') {
                        Some((a, b)) => (parse_decimal::<u64>(a), parse_decimal::<u64>(b)),
                        None => (parse_decimal(part), parse_decimal(part)),
                    };
                    let (Some(start), Some(last)) = (start, end) else {
                        return Err(parse_error(what, s, format!("bad interval \"{part}\"")));
                    };
                    let ok = last.checked_add(1).is_some_and(|end| {
                        set.add_interval(Tsid::new(uuid, tag.clone()), start, end)
                    });
                    if !ok {
                        return Err(parse_error(
                            what,
                            s,
                            format!("interval \"{part}\" is empty or outside 1-{}", GNO_END - 1),
                        ));
                    }
                    any = true;
                } else {
                    tag = Some(Tag::new(part).map_err(|e| parse_error(what, s, e.reason))?);
                }
            }
            if !any {
                return Err(parse_error(what, s, format!("{uuid} has no interval")));
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "57b70f4e-20d3-11e5-a393-4a63946f7eac";

    #[test]
    fn mariadb_gtid_and_position() {
        let g: Gtid = "0-1-42".parse().unwrap();
        assert_eq!((g.domain(), g.server_id(), g.seq()), (0, 1, 42));
        assert_eq!(g.to_string(), "0-1-42");
        for bad in [
            "",
            "0-1",
            "0-1-2-3",
            "a-1-2",
            "-1-1-2",
            "0-1-18446744073709551616",
        ] {
            assert!(bad.parse::<Gtid>().is_err(), "{bad}");
        }
        let mut pos: GtidPos = "1-2-7, 0-1-42".parse().unwrap();
        assert_eq!(pos.to_string(), "0-1-42,1-2-7");
        assert_eq!(pos.update(Gtid::new(0, 3, 43)), Some(g));
        assert_eq!(pos.to_string(), "0-3-43,1-2-7");
        assert!(pos.covers(Gtid::new(1, 9, 7)));
        assert!(!pos.covers(Gtid::new(2, 1, 1)));
        assert_eq!("".parse::<GtidPos>().unwrap(), GtidPos::new());
        let err = "0-1-1,0-2-2".parse::<GtidPos>().unwrap_err();
        assert!(err.to_string().contains("domain 0"), "{err}");
    }

    #[test]
    fn mysql_set_text() {
        let set: GtidSet = format!("{U2}:1-3,\n{U1}:7-9:1-5:6").parse().unwrap();
        assert_eq!(set.to_string(), format!("{U1}:1-9,{U2}:1-3"));
        let uuid: Uuid = U1.parse().unwrap();
        let g = |n| MysqlGtid::new(Tsid::new(uuid, None), n);
        assert!(set.contains(&g(9)));
        assert!(!set.contains(&g(10)));
        let mut set = set;
        assert!(set.insert(&g(11)));
        assert!(!set.insert(&g(11)));
        assert_eq!(set.to_string(), format!("{U1}:1-9:11,{U2}:1-3"));
        assert!(set.insert(&g(10)));
        assert_eq!(set.to_string(), format!("{U1}:1-11,{U2}:1-3"));
        assert_eq!(g(5).to_string(), format!("{U1}:5"));
        for bad in [
            "x:1",
            U1,
            &format!("{U1}:0"),
            &format!("{U1}:5-3"),
            &format!("{U1}:1-"),
        ] {
            assert!(bad.parse::<GtidSet>().is_err(), "{bad}");
        }
    }

    #[test]
    fn tagged_sets() {
        let set: GtidSet = format!("{U1}:1-5:Mytag:3:7-8").parse().unwrap();
        assert_eq!(set.to_string(), format!("{U1}:1-5:mytag:3:7-8"));
        let uuid: Uuid = U1.parse().unwrap();
        let tagged = MysqlGtid::new(Tsid::new(uuid, Some(Tag::new("mytag").unwrap())), 8);
        assert!(set.contains(&tagged));
        assert_eq!(tagged.to_string(), format!("{U1}:mytag:8"));
        assert!(Tag::new("1abc").is_err());
        assert!(Tag::new(&"a".repeat(33)).is_err());
    }

    #[test]
    fn binary_encoding_matches_the_server_layout() {
        let set: GtidSet = format!("{U1}:1-5:7").parse().unwrap();
        let mut out = Vec::new();
        set.encode(&mut out);
        let mut expect = 1u64.to_le_bytes().to_vec();
        expect.extend_from_slice(U1.parse::<Uuid>().unwrap().as_bytes());
        for v in [2u64, 1, 6, 7, 8] {
            expect.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(out, expect);
        assert_eq!(GtidSet::decode(&out).unwrap(), (set, out.len()));
        // Truncated at every length: an error, never a panic.
        for n in 0..out.len() {
            assert!(GtidSet::decode(&out[..n]).is_err(), "{n}");
        }
    }

    fn arb_set() -> impl Strategy<Value = GtidSet> {
        let source = (
            any::<[u8; 16]>(),
            prop::option::of("[a-z_][a-z0-9_]{0,31}"),
            prop::collection::vec((1u64..1_000_000, 1u64..1000), 1..5),
        );
        prop::collection::vec(source, 0..4).prop_map(|sources| {
            let mut set = GtidSet::new();
            for (uuid, tag, ivs) in sources {
                let tsid = Tsid::new(Uuid(uuid), tag.map(|t| Tag::new(&t).unwrap()));
                for (s, len) in ivs {
                    set.add_interval(tsid.clone(), s, s + len);
                }
            }
            set
        })
    }

    proptest! {
        #[test]
        fn mysql_set_round_trips(set in arb_set()) {
            prop_assert_eq!(set.to_string().parse::<GtidSet>(), Ok(set.clone()));
            let mut out = Vec::new();
            set.encode(&mut out);
            prop_assert_eq!(out.len(), set.encoded_len());
            prop_assert_eq!(GtidSet::decode(&out), Ok((set, out.len())));
        }

        #[test]
        fn mariadb_position_round_trips(gtids in prop::collection::btree_map(any::<u32>(), (any::<u32>(), any::<u64>()), 0..6)) {
            let mut pos = GtidPos::new();
            for (d, (s, q)) in gtids {
                pos.update(Gtid::new(d, s, q));
            }
            prop_assert_eq!(pos.to_string().parse::<GtidPos>(), Ok(pos));
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = GtidSet::decode(&bytes);
        }
    }
}
