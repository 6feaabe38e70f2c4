//! The recovery settings a restore writes into the new data directory: `recovery.signal`,
//! and lines appended to `postgresql.auto.conf` (read after `postgresql.conf`, so they win)
//! that fetch WAL with `logship wal-fetch` and stop at the target.
//!
//! The `restore_command` names the store by URL and passes the S3 endpoint, region and
//! path style as `LOGSHIP_STORE_*` variables. It carries no credentials: for an S3 store,
//! `wal-fetch` finds them through the standard AWS chain of the server's environment
//! (`AWS_*` variables, the `postgres` user's `~/.aws`, or the host's IAM role), so no
//! secret is ever written into the data directory.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::ValueEnum;
use jiff::Timestamp;
use logship_protocol::archive::key::SourceName;
use logship_protocol::pg::TimelineId;

use crate::pg::localpg::shell_quote;
use crate::pg::restore::plan::RecoveryTarget;

/// The port PostgreSQL listens on when its configuration does not say.
pub const DEFAULT_PORT: u16 = 5432;

/// What the server does once it reaches the target (`recovery_target_action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TargetAction {
    /// End recovery and accept writes, on a new timeline.
    Promote,
    /// Stay in recovery, paused, for inspection (needs `hot_standby`).
    Pause,
    /// Shut down; starting again replays to the target and shuts down again.
    Shutdown,
}

impl TargetAction {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetAction::Promote => "promote",
            TargetAction::Pause => "pause",
            TargetAction::Shutdown => "shutdown",
        }
    }
}

/// The store settings `wal-fetch` needs, as the restore's own store was opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreCommand {
    /// The `logship` executable, an absolute path.
    pub exe: PathBuf,
    /// The store's URL, with a file store's path absolute.
    pub store_url: String,
    /// The S3 endpoint, if not AWS.
    pub endpoint: Option<String>,
    /// The S3 region, if configured.
    pub region: Option<String>,
    /// Whether S3 buckets are addressed path-style.
    pub path_style: bool,
    /// The source whose WAL to fetch.
    pub source: SourceName,
}

/// A value that cannot be written into a configuration line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot put {what} {value:?} into the restore_command: it contains a line break or NUL (use a path and URL without control characters)"
)]
pub struct ConfError {
    /// Which value.
    pub what: &'static str,
    /// The value.
    pub value: String,
}

impl RestoreCommand {
    /// The shell command PostgreSQL runs, with `%` escaped except in `"%f" "%p"`.
    pub fn render(&self) -> Result<String, ConfError> {
        let mut words = Vec::new();
        let mut env = |name: &str, value: &str, what: &'static str| -> Result<(), ConfError> {
            words.push(format!("{name}={}", quote_word(value, what)?));
            Ok(())
        };
        if let Some(endpoint) = &self.endpoint {
            env("LOGSHIP_STORE_ENDPOINT", endpoint, "the S3 endpoint")?;
        }
        if let Some(region) = &self.region {
            env("LOGSHIP_STORE_REGION", region, "the S3 region")?;
        }
        if self.path_style {
            env("LOGSHIP_STORE_PATH_STYLE", "true", "path_style")?;
        }
        let exe = self.exe.to_str().ok_or_else(|| ConfError {
            what: "the logship path",
            value: self.exe.display().to_string(),
        })?;
        words.push(quote_word(exe, "the logship path")?);
        words.push("--store".to_owned());
        words.push(quote_word(&self.store_url, "the store URL")?);
        words.push("wal-fetch".to_owned());
        words.push("--source".to_owned());
        words.push(quote_word(self.source.as_str(), "the source name")?);
        words.push("\"%f\" \"%p\"".to_owned());
        Ok(words.join(" "))
    }
}

/// One shell word for the command line, with `%` doubled for PostgreSQL's placeholders.
fn quote_word(value: &str, what: &'static str) -> Result<String, ConfError> {
    if value.chars().any(|c| c == '\n' || c == '\r' || c == '\0') {
        return Err(ConfError {
            what,
            value: value.to_owned(),
        });
    }
    Ok(shell_quote(value).replace('%', "%%"))
}

/// Everything appended to `postgresql.auto.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoverySettings {
    /// The rendered `restore_command`.
    pub restore_command: String,
    /// Where recovery stops.
    pub target: RecoveryTarget,
    /// The timeline to follow.
    pub timeline: TimelineId,
    /// What to do at the target.
    pub action: TargetAction,
    /// The port the restored server listens on.
    pub port: u16,
    /// What the lines were written for, for the comment above them.
    pub origin: String,
}

impl RecoverySettings {
    /// The lines appended to `postgresql.auto.conf`.
    pub fn render(&self) -> String {
        let mut text = format!("\n# added by logship restore: {}\n", self.origin);
        let mut set = |name: &str, value: &str| {
            let _ = writeln!(text, "{name} = {}", guc_quote(value));
        };
        set("restore_command", &self.restore_command);
        match self.target {
            RecoveryTarget::Time(time) => set("recovery_target_time", &pg_time(time)),
            RecoveryTarget::Lsn(lsn) => set("recovery_target_lsn", &lsn.to_string()),
            RecoveryTarget::Xid(xid) => set("recovery_target_xid", &xid.to_string()),
            RecoveryTarget::Immediate => set("recovery_target", "immediate"),
            RecoveryTarget::Latest => {}
        }
        set("recovery_target_timeline", &self.timeline.get().to_string());
        set("recovery_target_action", self.action.as_str());
        set("recovery_target_inclusive", "true");
        // The restored server must not archive into the original's archive.
        set("archive_mode", "off");
        set("port", &self.port.to_string());
        text
    }

    /// Appends the settings to `dir/postgresql.auto.conf` and creates `recovery.signal`.
    /// A `standby.signal` from the original would make the server a standby that never
    /// reaches the target, so it is removed.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join("postgresql.auto.conf"))?;
        conf.write_all(self.render().as_bytes())?;
        conf.sync_all()?;
        std::fs::write(dir.join("recovery.signal"), b"")?;
        match std::fs::remove_file(dir.join("standby.signal")) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
            _ => Ok(()),
        }
    }
}

/// A time as PostgreSQL's `timestamptz` input, in UTC, to the microsecond it keeps.
fn pg_time(time: Timestamp) -> String {
    let micros = Timestamp::from_microsecond(time.as_microsecond()).unwrap_or(time);
    format!("{}+00", micros.strftime("%Y-%m-%d %H:%M:%S%.6f"))
}

/// A string value for a PostgreSQL configuration file: single-quoted, with `'` doubled and
/// `\` escaped, since the file's parser reads backslash escapes.
pub fn guc_quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        match c {
            '\'' => quoted.push_str("''"),
            '\\' => quoted.push_str("\\\\"),
            c => quoted.push(c),
        }
    }
    quoted.push('\'');
    quoted
}

/// The port the restored configuration sets: the last `port` in `postgresql.conf`, then
/// `postgresql.auto.conf` (read in PostgreSQL's order); [`DEFAULT_PORT`] if neither does.
/// Files pulled in with `include` are not followed.
pub fn configured_port(dir: &Path) -> u16 {
    let mut port = DEFAULT_PORT;
    for file in ["postgresql.conf", "postgresql.auto.conf"] {
        let Ok(text) = std::fs::read_to_string(dir.join(file)) else {
            continue;
        };
        if let Some(found) = text.lines().filter_map(port_setting).next_back() {
            port = found;
        }
    }
    port
}

/// The port a configuration line sets, if it is a `port` line.
fn port_setting(line: &str) -> Option<u16> {
    let line = line.split('#').next()?.trim();
    let rest = line.strip_prefix("port")?;
    let value = rest.trim_start();
    let value = value.strip_prefix('=').unwrap_or(value).trim();
    // A line such as `portal = …` is another setting: its name goes on after "port".
    if value.len() == rest.len() && !rest.starts_with(char::is_whitespace) {
        return None;
    }
    value.trim_matches('\'').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lines() {
        for (line, port) in [
            ("port = 5433", Some(5433)),
            ("port=5434 # comment", Some(5434)),
            ("  port '5435'", Some(5435)),
            ("#port = 5436", None),
            ("portal = 1", None),
            ("port_x = 1", None),
            ("port = nope", None),
        ] {
            assert_eq!(port_setting(line), port, "{line}");
        }
    }

    #[test]
    fn stops_the_user_cannot_name_render_their_own_settings() {
        let settings = |target| RecoverySettings {
            restore_command: "x".to_owned(),
            target,
            timeline: TimelineId::FIRST,
            action: TargetAction::Promote,
            port: 5433,
            origin: "test".to_owned(),
        };
        let xid = settings(RecoveryTarget::Xid(4711)).render();
        assert!(xid.contains("\nrecovery_target_xid = '4711'\n"), "{xid}");
        let immediate = settings(RecoveryTarget::Immediate).render();
        assert!(
            immediate.contains("\nrecovery_target = 'immediate'\n"),
            "{immediate}"
        );
        for text in [xid, immediate] {
            assert!(!text.contains("recovery_target_time ="), "{text}");
            assert!(!text.contains("recovery_target_lsn ="), "{text}");
        }
    }
}
