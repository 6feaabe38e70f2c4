//! The recovery settings a restore writes: quoting that survives PostgreSQL's configuration
//! parser, its `%` placeholders and `/bin/sh`, and the target lines for each kind of target.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use logship::pg::restore::plan::RecoveryTarget;
use logship::pg::restore::recovery_conf::{
    self, RecoverySettings, RestoreCommand, TargetAction, guc_quote,
};
use logship_protocol::archive::key::SourceName;
use logship_protocol::pg::TimelineId;

fn command(exe: &Path, store_url: &str) -> RestoreCommand {
    RestoreCommand {
        exe: exe.to_path_buf(),
        store_url: store_url.to_owned(),
        endpoint: None,
        region: None,
        path_style: false,
        source: SourceName::new("main").unwrap(),
    }
}

fn settings(restore_command: String, target: RecoveryTarget) -> RecoverySettings {
    RecoverySettings {
        restore_command,
        target,
        timeline: TimelineId::new(2).unwrap(),
        action: TargetAction::Pause,
        port: 5499,
        origin: "backup 000000010000000003000028".to_owned(),
    }
}

/// Reads a quoted value back the way PostgreSQL's configuration parser does
/// (`GUC_scanstr`): `''` is a quote, `\x` is `x` for the characters we escape.
fn guc_unquote(quoted: &str) -> String {
    let inner = quoted
        .strip_prefix('\'')
        .and_then(|q| q.strip_suffix('\''))
        .unwrap();
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                assert_eq!(chars.next(), Some('\''), "a lone quote in {quoted}");
                out.push('\'');
            }
            '\\' => out.push(chars.next().unwrap()),
            c => out.push(c),
        }
    }
    out
}

/// PostgreSQL's `%` substitution in `restore_command` (`BuildRestoreCommand`).
fn substitute(command: &str, file: &str, path: &str) -> String {
    let mut out = String::new();
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('f') => out.push_str(file),
            Some('p') => out.push_str(path),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[test]
fn restore_command_survives_the_config_parser_placeholders_and_the_shell() {
    let dir = tempfile::tempdir().unwrap();
    // A directory name with everything that needs quoting at some layer.
    let odd = dir.path().join("it's a 100% \\odd\\ \"dir\" $HOME `x`");
    std::fs::create_dir(&odd).unwrap();
    let exe = odd.join("logship");
    let argv_file = dir.path().join("argv");
    std::fs::write(
        &exe,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{}'\nprintf '%s\\n' \"$LOGSHIP_STORE_ENDPOINT\" \"$LOGSHIP_STORE_REGION\" \"$LOGSHIP_STORE_PATH_STYLE\" >> '{}'\n",
            argv_file.display(),
            argv_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut restore = command(&exe, "s3://bucket/a 'b' %p");
    restore.endpoint = Some("http://127.0.0.1:9000/?x='1'&y=%2F".to_owned());
    restore.region = Some("eu west".to_owned());
    restore.path_style = true;

    let text = settings(restore.render().unwrap(), RecoveryTarget::Latest).render();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("restore_command = "))
        .unwrap();
    let shell = substitute(
        &guc_unquote(line),
        "000000010000000000000003",
        "pg_wal/RECOVERYXLOG",
    );
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg(&shell)
        .status()
        .unwrap();
    assert!(status.success(), "{shell}");
    let argv = std::fs::read_to_string(&argv_file).unwrap();
    assert_eq!(
        argv.lines().collect::<Vec<_>>(),
        [
            "--store",
            "s3://bucket/a 'b' %p",
            "wal-fetch",
            "--source",
            "main",
            "000000010000000000000003",
            "pg_wal/RECOVERYXLOG",
            "http://127.0.0.1:9000/?x='1'&y=%2F",
            "eu west",
            "true",
        ]
    );
}

#[test]
fn plain_paths_stay_readable() {
    let restore = command(Path::new("/usr/bin/logship"), "file:///var/lib/logship");
    assert_eq!(
        restore.render().unwrap(),
        "/usr/bin/logship --store file:///var/lib/logship wal-fetch --source main \"%f\" \"%p\""
    );
}

#[test]
fn line_breaks_cannot_reach_the_config_file() {
    let restore = command(Path::new("/usr/bin/logship"), "file:///var/lib/a\nb");
    assert_eq!(
        restore.render().unwrap_err().to_string(),
        "cannot put the store URL \"file:///var/lib/a\\nb\" into the restore_command: it contains a line break or NUL (use a path and URL without control characters)"
    );
}

#[test]
fn each_target_kind_writes_its_own_lines() {
    let restore = "/usr/bin/logship wal-fetch \"%f\" \"%p\"".to_owned();
    let time = settings(
        restore.clone(),
        RecoveryTarget::Time("2026-11-21T10:15:00.25Z".parse().unwrap()),
    );
    assert_eq!(
        time.render(),
        "\n# added by logship restore: backup 000000010000000003000028\n\
         restore_command = '/usr/bin/logship wal-fetch \"%f\" \"%p\"'\n\
         recovery_target_time = '2026-11-21 10:15:00.250000+00'\n\
         recovery_target_timeline = '2'\n\
         recovery_target_action = 'pause'\n\
         recovery_target_inclusive = 'true'\n\
         archive_mode = 'off'\n\
         port = '5499'\n"
    );
    let lsn = settings(
        restore.clone(),
        RecoveryTarget::Lsn("0/3000100".parse().unwrap()),
    );
    assert!(
        lsn.render()
            .contains("\nrecovery_target_lsn = '0/3000100'\n")
    );
    assert!(!lsn.render().contains("recovery_target_time ="));
    let latest = settings(restore, RecoveryTarget::Latest).render();
    assert!(
        !latest.contains("recovery_target_time =") && !latest.contains("recovery_target_lsn =")
    );
    assert!(latest.contains("\nrecovery_target_timeline = '2'\n"));
}

#[test]
fn guc_quoting_doubles_quotes_and_escapes_backslashes() {
    assert_eq!(guc_quote("plain"), "'plain'");
    assert_eq!(guc_quote("it's"), "'it''s'");
    assert_eq!(guc_quote(r"a\b"), r"'a\\b'");
    for value in ["", "it's", r"a\'b", "100%"] {
        assert_eq!(guc_unquote(&guc_quote(value)), value);
    }
}

#[test]
fn writes_the_signal_file_and_appends_after_the_original_settings() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    std::fs::write(data.join("postgresql.conf"), "port = 5433\n#port = 1\n").unwrap();
    std::fs::write(
        data.join("postgresql.auto.conf"),
        "# Do not edit this file manually!\nport = '5434'\n",
    )
    .unwrap();
    std::fs::write(data.join("standby.signal"), b"").unwrap();
    assert_eq!(recovery_conf::configured_port(data), 5434);

    let written = settings("x".to_owned(), RecoveryTarget::Latest);
    written.write(data).unwrap();
    assert!(data.join("recovery.signal").is_file());
    assert!(!data.join("standby.signal").exists());
    let auto = std::fs::read_to_string(data.join("postgresql.auto.conf")).unwrap();
    assert!(auto.starts_with(
        "# Do not edit this file manually!\nport = '5434'\n\n# added by logship restore"
    ));
    // Ours come last, so they win.
    assert_eq!(recovery_conf::configured_port(data), 5499);
}

#[test]
fn the_port_defaults_to_postgres_default() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        recovery_conf::configured_port(&PathBuf::from(dir.path())),
        5432
    );
}
