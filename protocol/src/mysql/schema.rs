//! The schema script of a logical backup: the SQL statements that recreate the databases,
//! tables, views, triggers, routines, events, accounts and grants, each tagged with the
//! phase of the load it belongs to; and the split of a `SHOW CREATE TABLE` into the table
//! without its plain secondary keys and the keys to add once the rows are in.
//!
//! The object's content (docs/storage-format.md, "Schema script"):
//!
//! ```text
//! -- logship schema script, format 1
//! -- create 38
//! CREATE DATABASE `shop` /* ... */
//! -- index 41
//! ALTER TABLE `shop`.`orders` ADD KEY `k` (`c`)
//! ```
//!
//! Each statement is a header line `-- <phase> <length in bytes>`, then exactly that many
//! bytes of SQL (UTF-8, no trailing `;`), then a newline.

use std::fmt;
use std::str::FromStr;

/// The first line of every schema script.
const MAGIC_LINE: &str = "-- logship schema script, format 1\n";

/// When in the load a statement runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    /// Before the rows: databases and tables (without their plain secondary keys).
    Create,
    /// After the rows: one `ALTER TABLE ... ADD KEY ...` per table; each stands alone.
    Index,
    /// After the keys, in order on one session: views, triggers, routines, events, with the
    /// `USE` and `SET` statements they depend on.
    Object,
    /// Last, in order: accounts, roles and grants.
    Account,
}

impl Phase {
    /// The phase's name in the script.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Create => "create",
            Phase::Index => "index",
            Phase::Object => "object",
            Phase::Account => "account",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Phase {
    type Err = ();

    fn from_str(s: &str) -> Result<Phase, ()> {
        [Phase::Create, Phase::Index, Phase::Object, Phase::Account]
            .into_iter()
            .find(|phase| phase.name() == s)
            .ok_or(())
    }
}

/// One statement of the script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// When it runs.
    pub phase: Phase,
    /// The SQL, without a trailing `;`.
    pub sql: String,
}

/// A schema script that does not parse; the caller adds the object's key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The first line is not the format 1 header.
    #[error("schema script does not start with \"-- logship schema script, format 1\"")]
    NotAScript,
    /// A statement header or body is malformed.
    #[error("schema script is malformed at byte {offset}: {reason}")]
    Malformed {
        /// Where, from the start of the content.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The statements of a logical backup's schema, in script order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchemaScript {
    /// The statements; within a phase, in the order they run.
    pub statements: Vec<Statement>,
}

impl SchemaScript {
    /// Appends a statement.
    pub fn push(&mut self, phase: Phase, sql: impl Into<String>) {
        self.statements.push(Statement {
            phase,
            sql: sql.into(),
        });
    }

    /// The statements of one phase, in order.
    pub fn phase(&self, phase: Phase) -> impl Iterator<Item = &str> + '_ {
        self.statements
            .iter()
            .filter(move |s| s.phase == phase)
            .map(|s| s.sql.as_str())
    }

    /// The object content.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC_LINE.as_bytes().to_vec();
        for statement in &self.statements {
            out.extend_from_slice(
                format!("-- {} {}\n", statement.phase, statement.sql.len()).as_bytes(),
            );
            out.extend_from_slice(statement.sql.as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// Reads the object content back.
    pub fn parse(content: &[u8]) -> Result<SchemaScript, SchemaError> {
        let mut rest = content
            .strip_prefix(MAGIC_LINE.as_bytes())
            .ok_or(SchemaError::NotAScript)?;
        let mut script = SchemaScript::default();
        while !rest.is_empty() {
            let offset = content.len() - rest.len();
            let bad = |reason| SchemaError::Malformed { offset, reason };
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or(bad("a statement header without its newline"))?;
            let (header, body) = rest
                .split_at_checked(end)
                .ok_or(bad("a statement past the end"))?;
            let header = std::str::from_utf8(header).map_err(|_| bad("a header not UTF-8"))?;
            let (phase, len) = header
                .strip_prefix("-- ")
                .and_then(|h| h.split_once(' '))
                .ok_or(bad("expected \"-- <phase> <length>\""))?;
            let phase: Phase = phase.parse().map_err(|_| bad("an unknown phase"))?;
            let len: usize = len
                .parse()
                .ok()
                .filter(|_| len.bytes().all(|b| b.is_ascii_digit()))
                .ok_or(bad("a length that is not a decimal number"))?;
            let body = body.get(1..).unwrap_or_default();
            let (sql, after) = body
                .split_at_checked(len)
                .ok_or(bad("a statement past the end"))?;
            let Some((b'\n', after)) = after.split_first() else {
                return Err(bad("a statement not followed by a newline"));
            };
            let sql = std::str::from_utf8(sql).map_err(|_| bad("a statement not UTF-8"))?;
            script.push(phase, sql);
            rest = after;
        }
        Ok(script)
    }
}

/// An identifier quoted with backticks, as MySQL and MariaDB read it.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// A string literal in single quotes, for `sql_mode = '...'` and the like.
pub fn quote_string(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// A `SHOW CREATE TABLE` split for a fast load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitTable {
    /// The `CREATE TABLE` without the deferred keys.
    pub create: String,
    /// The deferred keys' definitions, such as ``KEY `k` (`c`)``.
    pub keys: Vec<String>,
}

/// Takes the plain secondary keys (`KEY ...` lines) out of `create`, to add after the rows.
///
/// Kept in place: primary, unique, full-text and spatial keys; every key of a table with a
/// foreign key (its keys may back the constraint); a key whose first column is the
/// `AUTO_INCREMENT` column (the server wants that column indexed at all times). A statement
/// that is not in `SHOW CREATE TABLE`'s shape is left whole.
pub fn split_secondary_keys(create: &str) -> SplitTable {
    let whole = || SplitTable {
        create: create.to_owned(),
        keys: Vec::new(),
    };
    let lines: Vec<&str> = create.split('\n').collect();
    let (Some(first), Some(last)) = (
        lines.first(),
        lines.iter().rposition(|l| l.starts_with(')')),
    ) else {
        return whole();
    };
    if !first.ends_with('(') || last < 2 {
        return whole();
    }
    let (head, tail) = lines.split_at(last);
    let body: Vec<&str> = head
        .iter()
        .skip(1)
        .map(|l| l.strip_suffix(',').unwrap_or(l))
        .collect();
    if body.iter().any(|l| !l.starts_with("  ")) {
        return whole();
    }
    if body.iter().any(|l| l.contains(" FOREIGN KEY ")) {
        return whole();
    }
    let auto_increment = body
        .iter()
        .find(|l| l.starts_with("  `") && l.contains(" AUTO_INCREMENT"))
        .and_then(|l| first_ident(&l[2..]));
    let (keys, kept): (Vec<&str>, Vec<&str>) = body.into_iter().partition(|l| {
        let Some(key) = l.strip_prefix("  KEY ") else {
            return false;
        };
        let first_column = key.find(" (").and_then(|at| first_ident(&key[at + 2..]));
        auto_increment.is_none() || first_column != auto_increment
    });
    if keys.is_empty() {
        return whole();
    }
    let mut out = String::with_capacity(create.len());
    out.push_str(first);
    out.push('\n');
    out.push_str(&kept.join(",\n"));
    for line in tail {
        out.push('\n');
        out.push_str(line);
    }
    SplitTable {
        create: out,
        keys: keys
            .into_iter()
            .map(|k| k.trim_start().to_owned())
            .collect(),
    }
}

/// The backtick-quoted identifier at the start of `text`, unquoted.
fn first_ident(text: &str) -> Option<String> {
    let rest = text.strip_prefix('`')?;
    let mut name = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '`' {
            if chars.peek() == Some(&'`') {
                chars.next();
                name.push('`');
                continue;
            }
            return Some(name);
        }
        name.push(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_round_trip_with_any_text() {
        let mut script = SchemaScript::default();
        script.push(Phase::Create, "CREATE DATABASE `a`");
        script.push(
            Phase::Object,
            "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT '\n-- index 3\n'; END",
        );
        script.push(Phase::Account, "");
        script.push(Phase::Index, "ALTER TABLE `a`.`t` ADD KEY `k` (`c`)");
        let encoded = script.encode();
        assert!(encoded.starts_with(
            b"-- logship schema script, format 1\n-- create 19\nCREATE DATABASE `a`\n-- object "
        ));
        assert_eq!(SchemaScript::parse(&encoded), Ok(script.clone()));
        let index: Vec<&str> = script.phase(Phase::Index).collect();
        assert_eq!(index, ["ALTER TABLE `a`.`t` ADD KEY `k` (`c`)"]);
    }

    #[test]
    fn refuses_malformed_scripts() {
        assert_eq!(
            SchemaScript::parse(b"CREATE TABLE t"),
            Err(SchemaError::NotAScript)
        );
        let cases: [(&[u8], &str); 6] = [
            (b"-- create 3\nabc", "a statement not followed by a newline"),
            (b"-- create 9\nabc\n", "a statement past the end"),
            (b"-- drop 3\nabc\n", "an unknown phase"),
            (
                b"-- create +3\nabc\n",
                "a length that is not a decimal number",
            ),
            (b"-- create", "a statement header without its newline"),
            (b"create 3\nabc\n", "expected \"-- <phase> <length>\""),
        ];
        for (body, reason) in cases {
            let content = [MAGIC_LINE.as_bytes(), body].concat();
            assert_eq!(
                SchemaScript::parse(&content),
                Err(SchemaError::Malformed {
                    offset: MAGIC_LINE.len(),
                    reason
                })
            );
        }
    }

    #[test]
    fn plain_keys_move_after_the_rows() {
        let create = "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `a` int(11) DEFAULT NULL,\n  `b` varchar(10) DEFAULT 'x,y',\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `ua` (`a`),\n  KEY `kb` (`b`),\n  KEY `kab` (`a`,`b`)\n) ENGINE=InnoDB DEFAULT CHARSET=latin1\n PARTITION BY HASH (`id`)";
        let split = split_secondary_keys(create);
        assert_eq!(
            split.create,
            "CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `a` int(11) DEFAULT NULL,\n  `b` varchar(10) DEFAULT 'x,y',\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `ua` (`a`)\n) ENGINE=InnoDB DEFAULT CHARSET=latin1\n PARTITION BY HASH (`id`)"
        );
        assert_eq!(split.keys, ["KEY `kb` (`b`)", "KEY `kab` (`a`,`b`)"]);
    }

    #[test]
    fn keys_that_must_stay_stay() {
        let auto = "CREATE TABLE `t` (\n  `n` int(11) NOT NULL AUTO_INCREMENT,\n  `v` int(11),\n  KEY `kn` (`n`),\n  KEY `kv` (`v`)\n) ENGINE=InnoDB";
        let split = split_secondary_keys(auto);
        assert_eq!(split.keys, ["KEY `kv` (`v`)"]);
        assert!(split.create.contains("  KEY `kn` (`n`)\n) ENGINE"));
        let foreign = "CREATE TABLE `c` (\n  `id` int(11) NOT NULL,\n  `p` int(11),\n  PRIMARY KEY (`id`),\n  KEY `p` (`p`),\n  CONSTRAINT `f` FOREIGN KEY (`p`) REFERENCES `parent` (`id`)\n) ENGINE=InnoDB";
        assert_eq!(split_secondary_keys(foreign).create, foreign);
        let none =
            "CREATE TABLE `n` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB";
        assert!(split_secondary_keys(none).keys.is_empty());
        assert_eq!(
            split_secondary_keys("CREATE TABLE odd").create,
            "CREATE TABLE odd"
        );
    }

    #[test]
    fn quotes_identifiers_and_strings() {
        assert_eq!(quote_ident("a`b"), "`a``b`");
        assert_eq!(quote_string("it's \\"), "'it''s \\\\'");
        assert_eq!(first_ident("`a``b` int"), Some("a`b".into()));
    }
}
