//! Configuration: a TOML file (DESIGN.md §3), overlaid by `LOGSHIP_…` environment
//! variables, then by inline flags (`--postgres URL --store URL`).
//!
//! Two layers: what the user wrote ([`SourceConfig`], one `[[source]]` table), then the
//! typed per-kind objects built from it once, here ([`Source`]), so that the rest of the
//! code never sees a key that means nothing for its kind.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use logship_protocol::archive::backup::CheckpointMode;
use logship_protocol::archive::key::SourceName;
use serde::{Deserialize, Deserializer};

use crate::pg::conn::{ConnectOptions, PgError};
use crate::store::StoreConfig;

/// The store every command uses when none is configured: the embedded file store.
pub const DEFAULT_STORE_URL: &str = "file://./logship-data";

/// The name of a source given inline with `--postgres`.
pub const INLINE_SOURCE_NAME: &str = "default";

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreConfig,
    pub sources: Vec<Source>,
    pub metrics: MetricsConfig,
}

/// The configuration as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    store: StoreConfig,
    #[serde(default, rename = "source")]
    sources: Vec<SourceConfig>,
    #[serde(default)]
    metrics: MetricsConfig,
}

/// What a source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Postgres,
    Mysql,
}

/// One `[[source]]` table as written; [`Source::from_config`] checks and types it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    pub url: String,
    #[serde(default = "default_flush_interval", deserialize_with = "duration")]
    pub flush_interval: Duration,
    #[serde(default, deserialize_with = "optional_duration")]
    pub base_backup_interval: Option<Duration>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    // PostgreSQL only.
    pub slot: Option<String>,
    pub application_name: Option<String>,
    pub synchronous: Option<bool>,
    pub backup_checkpoint: Option<CheckpointMode>,
    /// A limit on the server's send rate during base backups, in kB/s.
    pub backup_max_rate: Option<u32>,
    // MySQL only.
    pub server_id: Option<u32>,
    pub semi_sync: Option<bool>,
    pub backup_method: Option<String>,
    /// Connections that read a logical backup's rows in parallel.
    pub backup_workers: Option<u32>,
}

/// A configured source, typed for its kind.
#[derive(Debug, Clone)]
pub enum Source {
    Postgres(PgSourceConfig),
    Mysql(MysqlSourceConfig),
}

/// What every source has, whatever its kind.
#[derive(Debug, Clone)]
pub struct SourceCommon {
    /// The validated name, the first component of every key of the source.
    pub name: SourceName,
    /// The server's URL; it may hold the password.
    pub url: String,
    /// How often the file or segment in progress is shipped; zero: after every batch.
    pub flush_interval: Duration,
    /// How often a base backup is taken.
    pub base_backup_interval: Duration,
    /// A file holding the password, read when connecting.
    pub password_file: Option<PathBuf>,
}

/// A PostgreSQL source.
#[derive(Debug, Clone)]
pub struct PgSourceConfig {
    pub common: SourceCommon,
    /// The physical replication slot, created if missing.
    pub slot: String,
    /// The name in `pg_stat_replication` and `synchronous_standby_names`.
    pub application_name: String,
    /// Acknowledge every flush batch, for synchronous replication.
    pub synchronous: bool,
    /// How base backups ask for their checkpoint.
    pub backup_checkpoint: CheckpointMode,
    /// A limit on the server's send rate during base backups, in kB/s.
    pub backup_max_rate: Option<u32>,
}

/// A MySQL or MariaDB source.
#[derive(Debug, Clone)]
pub struct MysqlSourceConfig {
    pub common: SourceCommon,
    /// The replica's `server_id`: configured, or derived from the source name; never 0.
    pub server_id: u32,
    /// Acknowledge transactions to a semi-sync primary once they are durable.
    pub semi_sync: bool,
    /// Connections that read a logical backup's rows in parallel; at least 1.
    pub backup_workers: usize,
    /// Whether `logship run` takes backups on schedule: only when `base_backup_interval` is
    /// set for the source, since a binlog user often lacks what a logical backup reads.
    pub scheduled_backups: bool,
}

/// How many connections a logical backup reads rows with unless told otherwise.
pub const DEFAULT_BACKUP_WORKERS: usize = 2;

/// The `[metrics]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics_listen(),
        }
    }
}

const DEFAULT_SLOT: &str = "logship";
const DEFAULT_APPLICATION_NAME: &str = "logship";
fn default_flush_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_base_backup_interval() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9187))
}

/// Parses `1s`, `500ms`, `24h`, `1h 30m` or an ISO 8601 duration.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let signed: jiff::SignedDuration = text.parse().map_err(|err| {
        anyhow!("invalid duration {text:?}: {err} (write it like \"1s\", \"500ms\" or \"24h\")")
    })?;
    Duration::try_from(signed)
        .map_err(|_| anyhow!("invalid duration {text:?}: it must not be negative"))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// What the command line adds to the configuration.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub postgres: Option<String>,
    pub mysql: Option<String>,
    pub store: Option<String>,
}

/// Keys of a `[[source]]` table that environment variables may set, with their TOML types.
const SOURCE_KEYS: &[(&str, ValueKind)] = &[
    ("application_name", ValueKind::String),
    ("backup_checkpoint", ValueKind::String),
    ("backup_max_rate", ValueKind::Integer),
    ("backup_method", ValueKind::String),
    ("backup_workers", ValueKind::Integer),
    ("base_backup_interval", ValueKind::String),
    ("flush_interval", ValueKind::String),
    ("password_file", ValueKind::String),
    ("semi_sync", ValueKind::Bool),
    ("server_id", ValueKind::Integer),
    ("synchronous", ValueKind::Bool),
    ("kind", ValueKind::String),
    ("slot", ValueKind::String),
    ("url", ValueKind::String),
];

#[derive(Clone, Copy)]
enum ValueKind {
    String,
    Bool,
    Integer,
}

impl Config {
    /// Loads the file (`--config`, `LOGSHIP_CONFIG`, or `./logship.toml` if present),
    /// overlays `LOGSHIP_…` variables from `env`, then the inline flags.
    pub fn load(overrides: &Overrides, env: &BTreeMap<String, String>) -> anyhow::Result<Config> {
        let file = overrides.config_file.clone().or_else(|| {
            let default = PathBuf::from("logship.toml");
            default.exists().then_some(default)
        });
        let mut table = match &file {
            Some(path) => read_table(path)?,
            None => toml::Table::new(),
        };
        let inline = match (&overrides.postgres, &overrides.mysql) {
            (Some(url), _) => Some(("postgres", url)),
            (None, Some(url)) => Some(("mysql", url)),
            (None, None) => None,
        };
        if let Some((kind, url)) = inline {
            // Placed before the environment overlay, so LOGSHIP_SOURCE_DEFAULT_* apply to it.
            if table.contains_key("source") {
                bail!(
                    "--postgres/--mysql cannot be combined with [[source]] tables in the configuration (use one or the other)"
                );
            }
            let source = source_table(&mut table, &INLINE_SOURCE_NAME.to_uppercase())?;
            source.insert("kind".into(), toml::Value::String(kind.to_owned()));
            source.insert("url".into(), toml::Value::String(url.clone()));
        }
        overlay_env(&mut table, env)?;
        // The store URL: the flag wins, then the file or env, then the embedded default.
        let store = sub_table(&mut table, "store")?;
        match &overrides.store {
            Some(url) => {
                store.insert("url".into(), toml::Value::String(url.clone()));
            }
            None => {
                store
                    .entry("url")
                    .or_insert_with(|| toml::Value::String(DEFAULT_STORE_URL.to_owned()));
            }
        }
        let config: RawConfig = table.try_into().map_err(|err: toml::de::Error| {
            let place = file
                .as_deref()
                .map_or("configuration".to_owned(), |p| p.display().to_string());
            anyhow!(
                "invalid {place}: {} (see the [store], [[source]] and [metrics] keys in the docs)",
                one_line(&err.to_string())
            )
        })?;
        let mut seen = std::collections::BTreeSet::new();
        let mut sources = Vec::new();
        for raw in config.sources {
            let source = Source::from_config(raw)?;
            if !seen.insert(source.name().clone()) {
                bail!(
                    "source {:?} is configured twice (give each [[source]] its own name)",
                    source.name().as_str()
                );
            }
            sources.push(source);
        }
        Ok(Config {
            store: config.store,
            sources,
            metrics: config.metrics,
        })
    }

    /// The source called `name`, or the only one when `name` is `None`.
    pub fn source(&self, name: Option<&str>) -> anyhow::Result<&Source> {
        match name {
            Some(name) => self
                .sources
                .iter()
                .find(|s| s.name().as_str() == name)
                .with_context(|| {
                    format!(
                        "no source named {name:?} in the configuration (configured: {})",
                        self.source_names()
                    )
                }),
            None => match self.sources.as_slice() {
                [only] => Ok(only),
                [] => bail!(
                    "no source configured (pass --postgres URL, or add a [[source]] to logship.toml)"
                ),
                _ => bail!(
                    "several sources are configured (choose one with --source: {})",
                    self.source_names()
                ),
            },
        }
    }

    fn source_names(&self) -> String {
        self.sources
            .iter()
            .map(|s| s.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a source's connection options could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SourceOptionsError {
    #[error(transparent)]
    Url(#[from] PgError),
    #[error(transparent)]
    PasswordFile(#[from] PasswordFileError),
}

/// A `password_file` that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read password file {path}: {reason} (check password_file in the source's configuration)"
)]
pub struct PasswordFileError {
    path: String,
    reason: String,
}

impl Source {
    /// A source of `kind` named `name` at `url`, every other key at its default.
    fn inline(name: &str, kind: &str, url: &str) -> anyhow::Result<Source> {
        let mut table = toml::Table::new();
        table.insert("name".into(), toml::Value::String(name.to_owned()));
        table.insert("kind".into(), toml::Value::String(kind.to_owned()));
        table.insert("url".into(), toml::Value::String(url.to_owned()));
        let raw: SourceConfig = table.try_into().map_err(|err: toml::de::Error| {
            anyhow!("invalid source {name:?}: {}", one_line(&err.to_string()))
        })?;
        Source::from_config(raw)
    }

    /// Checks a `[[source]]` table and types it for its kind. A key that means nothing
    /// for the kind is refused rather than ignored.
    pub fn from_config(raw: SourceConfig) -> anyhow::Result<Source> {
        let name = SourceName::new(&raw.name).map_err(|err| {
            anyhow!(
                "invalid source name {:?}: {err} (use lower-case letters, digits, '-' and '_')",
                raw.name
            )
        })?;
        let only_for = |kind: &str, keys: &[(&str, bool)]| -> anyhow::Result<()> {
            match keys.iter().find(|(_, set)| *set) {
                Some((key, _)) => bail!(
                    "source {:?}: {key} applies to {kind} sources only (remove it, or check the source's kind)",
                    raw.name
                ),
                None => Ok(()),
            }
        };
        let common = SourceCommon {
            name,
            url: raw.url,
            flush_interval: raw.flush_interval,
            base_backup_interval: raw
                .base_backup_interval
                .unwrap_or_else(default_base_backup_interval),
            password_file: raw.password_file,
        };
        match raw.kind {
            SourceKind::Postgres => {
                only_for(
                    "MySQL",
                    &[
                        ("server_id", raw.server_id.is_some()),
                        ("semi_sync", raw.semi_sync.is_some()),
                        ("backup_method", raw.backup_method.is_some()),
                        ("backup_workers", raw.backup_workers.is_some()),
                    ],
                )?;
                Ok(Source::Postgres(PgSourceConfig {
                    common,
                    slot: raw.slot.unwrap_or_else(|| DEFAULT_SLOT.to_owned()),
                    application_name: raw
                        .application_name
                        .unwrap_or_else(|| DEFAULT_APPLICATION_NAME.to_owned()),
                    synchronous: raw.synchronous.unwrap_or(false),
                    backup_checkpoint: raw.backup_checkpoint.unwrap_or(CheckpointMode::Fast),
                    backup_max_rate: raw.backup_max_rate,
                }))
            }
            SourceKind::Mysql => {
                only_for(
                    "PostgreSQL",
                    &[
                        ("slot", raw.slot.is_some()),
                        ("application_name", raw.application_name.is_some()),
                        ("synchronous", raw.synchronous.is_some()),
                        ("backup_checkpoint", raw.backup_checkpoint.is_some()),
                        ("backup_max_rate", raw.backup_max_rate.is_some()),
                    ],
                )?;
                match raw.backup_method.as_deref() {
                    None | Some("logical") => {}
                    Some("physical") => bail!(
                        "source {:?}: backup_method \"physical\" (mariadb-backup) is not built yet (use backup_method = \"logical\")",
                        raw.name
                    ),
                    Some(other) => bail!(
                        "source {:?}: unknown backup_method {other:?} (use \"logical\")",
                        raw.name
                    ),
                }
                let backup_workers = match raw.backup_workers {
                    Some(0) => bail!(
                        "source {:?}: backup_workers 0 is not allowed (a backup needs at least one connection)",
                        raw.name
                    ),
                    Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
                    None => DEFAULT_BACKUP_WORKERS,
                };
                let server_id = match raw.server_id {
                    Some(0) => bail!(
                        "source {:?}: server_id 0 is not allowed (a replica needs a server_id no other server or replica uses, from 1 to 4294967295)",
                        raw.name
                    ),
                    Some(id) => id,
                    None => derived_server_id(&common.name),
                };
                Ok(Source::Mysql(MysqlSourceConfig {
                    common,
                    server_id,
                    semi_sync: raw.semi_sync.unwrap_or(false),
                    backup_workers,
                    scheduled_backups: raw.base_backup_interval.is_some(),
                }))
            }
        }
    }

    /// What every kind has.
    pub fn common(&self) -> &SourceCommon {
        match self {
            Source::Postgres(pg) => &pg.common,
            Source::Mysql(mysql) => &mysql.common,
        }
    }

    /// The source's name.
    pub fn name(&self) -> &SourceName {
        &self.common().name
    }
}

/// A `server_id` derived from the source name, so that each source of one agent gets its
/// own and a restarted agent the same one. Never 0, and never 1, every server's default.
fn derived_server_id(name: &SourceName) -> u32 {
    let hash = crc32fast::hash(format!("logship/{name}").as_bytes());
    hash.max(2)
}

impl SourceCommon {
    /// The password from `password_file`, when one is configured.
    pub fn file_password(&self) -> Result<Option<String>, PasswordFileError> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        let password = std::fs::read_to_string(path).map_err(|e| PasswordFileError {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some(password.trim_end_matches(['\r', '\n']).to_owned()))
    }
}

impl PgSourceConfig {
    /// Connection options for this source under `application_name`, with the
    /// password from `password_file` when one is configured.
    pub fn connect_options(
        &self,
        application_name: &str,
    ) -> Result<ConnectOptions, SourceOptionsError> {
        let mut options =
            ConnectOptions::from_url(&self.common.url)?.application_name(application_name);
        if let Some(password) = self.common.file_password()? {
            options = options.password(password);
        }
        Ok(options)
    }

    /// A PostgreSQL source named `name` at `url`, every other key at its default.
    pub fn inline(name: &str, url: &str) -> anyhow::Result<PgSourceConfig> {
        match Source::inline(name, "postgres", url)? {
            Source::Postgres(pg) => Ok(pg),
            Source::Mysql(_) => bail!("source {name:?} is not a PostgreSQL source"),
        }
    }
}

impl MysqlSourceConfig {
    /// A MySQL/MariaDB source named `name` at `url`, every other key at its default.
    pub fn inline(name: &str, url: &str) -> anyhow::Result<MysqlSourceConfig> {
        match Source::inline(name, "mysql", url)? {
            Source::Mysql(mysql) => Ok(mysql),
            Source::Postgres(_) => bail!("source {name:?} is not a MySQL source"),
        }
    }
}

fn read_table(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        anyhow!(
            "cannot read config file {}: {err} (check the --config path)",
            path.display()
        )
    })?;
    text.parse::<toml::Table>().map_err(|err| {
        anyhow!(
            "invalid config file {}: {}",
            path.display(),
            one_line(&err.to_string())
        )
    })
}

/// Applies `LOGSHIP_STORE_<KEY>`, `LOGSHIP_METRICS_<KEY>` and `LOGSHIP_SOURCE_<NAME>_<KEY>`.
fn overlay_env(table: &mut toml::Table, env: &BTreeMap<String, String>) -> anyhow::Result<()> {
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("LOGSHIP_") else {
            continue;
        };
        if let Some(key) = rest.strip_prefix("STORE_") {
            let kind = if key == "PATH_STYLE" {
                ValueKind::Bool
            } else {
                ValueKind::String
            };
            sub_table(table, "store")?.insert(key.to_lowercase(), typed(name, value, kind)?);
        } else if let Some(key) = rest.strip_prefix("METRICS_") {
            sub_table(table, "metrics")?
                .insert(key.to_lowercase(), typed(name, value, ValueKind::String)?);
        } else if let Some(rest) = rest.strip_prefix("SOURCE_") {
            let (source, key, kind) = SOURCE_KEYS
                .iter()
                .find_map(|(key, kind)| {
                    let source = rest.strip_suffix(&key.to_uppercase())?.strip_suffix('_')?;
                    (!source.is_empty()).then_some((source, *key, *kind))
                })
                .with_context(|| format!("unknown setting {name} (expected LOGSHIP_SOURCE_<NAME>_<KEY> with KEY one of {})", SOURCE_KEYS.iter().map(|(k, _)| k.to_uppercase()).collect::<Vec<_>>().join(", ")))?;
            let value = typed(name, value, kind)?;
            source_table(table, source)?.insert(key.to_owned(), value);
        }
    }
    Ok(())
}

fn typed(name: &str, value: &str, kind: ValueKind) -> anyhow::Result<toml::Value> {
    Ok(match kind {
        ValueKind::String => toml::Value::String(value.to_owned()),
        ValueKind::Bool => toml::Value::Boolean(
            value
                .parse()
                .map_err(|_| anyhow!("{name}={value:?} is not a boolean (use true or false)"))?,
        ),
        ValueKind::Integer => toml::Value::Integer(
            value
                .parse()
                .map_err(|_| anyhow!("{name}={value:?} is not an integer"))?,
        ),
    })
}

fn sub_table<'a>(table: &'a mut toml::Table, name: &str) -> anyhow::Result<&'a mut toml::Table> {
    table
        .entry(name)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .with_context(|| format!("[{name}] in the configuration must be a table"))
}

/// The `[[source]]` entry whose name matches `env_name` (upper case, `-` as `_`), created if missing.
fn source_table<'a>(
    table: &'a mut toml::Table,
    env_name: &str,
) -> anyhow::Result<&'a mut toml::Table> {
    let sources = table
        .entry("source")
        .or_insert_with(|| toml::Value::Array(Vec::new()))
        .as_array_mut()
        .context("[[source]] in the configuration must be an array of tables")?;
    let matches = |s: &toml::Value| {
        s.get("name")
            .and_then(toml::Value::as_str)
            .is_some_and(|n| n.to_uppercase().replace('-', "_") == env_name)
    };
    let index = match sources.iter().position(matches) {
        Some(i) => i,
        None => {
            let mut new = toml::Table::new();
            new.insert("name".into(), toml::Value::String(env_name.to_lowercase()));
            sources.push(toml::Value::Table(new));
            sources.len() - 1
        }
    };
    sources
        .get_mut(index)
        .and_then(toml::Value::as_table_mut)
        .context("[[source]] in the configuration must be an array of tables")
}

/// Folds a multi-line message (TOML errors draw the offending line) into one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postgres(source: &Source) -> &PgSourceConfig {
        match source {
            Source::Postgres(pg) => pg,
            Source::Mysql(_) => panic!("expected a PostgreSQL source"),
        }
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn inline_source_gets_defaults() {
        let overrides = Overrides {
            postgres: Some("postgres://repl@db/postgres".into()),
            ..Overrides::default()
        };
        let config = Config::load(&overrides, &env(&[])).unwrap();
        let source = postgres(config.source(None).unwrap());
        assert_eq!(source.common.name.as_str(), "default");
        assert_eq!(source.common.flush_interval, Duration::from_secs(1));
        assert_eq!(source.slot, "logship");
        assert_eq!(config.store.url, DEFAULT_STORE_URL);
    }

    #[test]
    fn env_overrides_file_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logship.toml");
        std::fs::write(
            &path,
            "[store]\nurl = \"file:///a\"\n[[source]]\nname = \"main-db\"\nkind = \"postgres\"\nurl = \"postgres://x@h/p\"\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(path),
            ..Overrides::default()
        };
        let config = Config::load(
            &overrides,
            &env(&[
                ("LOGSHIP_STORE_URL", "s3://b/p"),
                ("LOGSHIP_STORE_PATH_STYLE", "true"),
                ("LOGSHIP_SOURCE_MAIN_DB_FLUSH_INTERVAL", "0s"),
                ("LOGSHIP_SOURCE_MAIN_DB_SYNCHRONOUS", "true"),
                ("LOGSHIP_METRICS_LISTEN", "127.0.0.1:1"),
            ]),
        )
        .unwrap();
        assert_eq!(config.store.url, "s3://b/p");
        assert!(config.store.path_style);
        let source = postgres(config.source(Some("main-db")).unwrap());
        assert_eq!(source.common.flush_interval, Duration::ZERO);
        assert!(source.synchronous);
        assert_eq!(config.metrics.listen, "127.0.0.1:1".parse().unwrap());
    }

    #[test]
    fn store_flag_completes_a_store_table_from_env() {
        let overrides = Overrides {
            store: Some("s3://bucket/prefix".into()),
            ..Overrides::default()
        };
        let config = Config::load(
            &overrides,
            &env(&[("LOGSHIP_STORE_ENDPOINT", "http://127.0.0.1:9000")]),
        )
        .unwrap();
        assert_eq!(config.store.url, "s3://bucket/prefix");
        assert_eq!(
            config.store.endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
    }

    #[test]
    fn env_settings_apply_to_the_inline_source() {
        let overrides = Overrides {
            postgres: Some("postgres://repl@db/postgres".into()),
            ..Overrides::default()
        };
        let config = Config::load(
            &overrides,
            &env(&[("LOGSHIP_SOURCE_DEFAULT_FLUSH_INTERVAL", "250ms")]),
        )
        .unwrap();
        let source = config.source(None).unwrap().common();
        assert_eq!(source.url, "postgres://repl@db/postgres");
        assert_eq!(source.flush_interval, Duration::from_millis(250));
    }

    fn load_env(pairs: &[(&str, &str)]) -> anyhow::Result<Config> {
        Config::load(&Overrides::default(), &env(pairs))
    }

    #[test]
    fn a_mysql_source_is_typed_with_a_derived_server_id() {
        let config = load_env(&[
            ("LOGSHIP_SOURCE_SHOP_KIND", "mysql"),
            ("LOGSHIP_SOURCE_SHOP_URL", "mysql://repl@db:3306"),
            ("LOGSHIP_SOURCE_SHOP_SEMI_SYNC", "true"),
        ])
        .unwrap();
        let Source::Mysql(shop) = config.source(None).unwrap() else {
            panic!("expected a MySQL source");
        };
        assert!(shop.semi_sync);
        assert_eq!(shop.server_id, derived_server_id(&shop.common.name));
        assert!(shop.server_id > 1);

        let config = load_env(&[
            ("LOGSHIP_SOURCE_SHOP_KIND", "mysql"),
            ("LOGSHIP_SOURCE_SHOP_URL", "mysql://repl@db:3306"),
            ("LOGSHIP_SOURCE_SHOP_SERVER_ID", "4242"),
        ])
        .unwrap();
        let Source::Mysql(shop) = config.source(None).unwrap() else {
            panic!("expected a MySQL source");
        };
        assert_eq!(shop.server_id, 4242);
    }

    #[test]
    fn keys_of_the_other_kind_are_refused() {
        let err = load_env(&[
            ("LOGSHIP_SOURCE_SHOP_KIND", "mysql"),
            ("LOGSHIP_SOURCE_SHOP_URL", "mysql://repl@db:3306"),
            ("LOGSHIP_SOURCE_SHOP_SLOT", "s"),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "source \"shop\": slot applies to PostgreSQL sources only (remove it, or check the source's kind)"
        );
        let err = load_env(&[
            ("LOGSHIP_SOURCE_MAIN_KIND", "postgres"),
            ("LOGSHIP_SOURCE_MAIN_URL", "postgres://x@h/p"),
            ("LOGSHIP_SOURCE_MAIN_SERVER_ID", "7"),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "source \"main\": server_id applies to MySQL sources only (remove it, or check the source's kind)"
        );
        let err = load_env(&[
            ("LOGSHIP_SOURCE_SHOP_KIND", "mysql"),
            ("LOGSHIP_SOURCE_SHOP_URL", "mysql://repl@db:3306"),
            ("LOGSHIP_SOURCE_SHOP_SERVER_ID", "0"),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("source \"shop\": server_id 0 is not allowed"),
            "{err}"
        );
    }

    #[test]
    fn bad_duration_is_one_clear_line() {
        let err = Config::load(
            &Overrides::default(),
            &env(&[
                ("LOGSHIP_SOURCE_A_URL", "postgres://x@h/p"),
                ("LOGSHIP_SOURCE_A_KIND", "postgres"),
                ("LOGSHIP_SOURCE_A_FLUSH_INTERVAL", "soon"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("invalid duration \"soon\""), "{err}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert!(parse_duration("-1s").is_err());
    }
}
