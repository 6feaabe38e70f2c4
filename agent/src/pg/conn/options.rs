//! Connection options, parsed from a `postgres://` URL.

use std::fmt;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;
use url::Url;

pub use crate::tls::SslMode;

use super::error::PgError;

/// The default PostgreSQL port.
const DEFAULT_PORT: u16 = 5432;

/// A password that never shows in `Debug` output.
#[derive(Clone)]
pub(crate) struct Password(String);

impl Password {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where and how to connect; `Debug` and `Display` never show the password.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    host: String,
    port: u16,
    user: String,
    password: Option<Password>,
    dbname: String,
    sslmode: SslMode,
    sslrootcert: Option<PathBuf>,
    application_name: Option<String>,
}

impl ConnectOptions {
    /// Parses `postgres[ql]://user[:password]@host[:port][/dbname][?sslmode=…&sslrootcert=…&application_name=…&password_file=…]`.
    ///
    /// The password comes from the URL, else `password_file`, else env `PGPASSWORD`.
    pub fn from_url(url: &str) -> Result<ConnectOptions, PgError> {
        let parsed = Url::parse(url).map_err(|e| {
            PgError::url(format!(
                "{e} (write it as postgres://USER[:PASSWORD]@HOST[:PORT][/DBNAME])"
            ))
        })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(PgError::url(format!(
                "unsupported scheme \"{}\" (use postgres:// or postgresql://)",
                parsed.scheme()
            )));
        }
        let host = match parsed.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => {
                return Err(PgError::url(
                    "missing host (write it as postgres://USER@HOST[:PORT])".to_string(),
                ));
            }
        };
        let host = decode(host, "host")?;
        let user = decode(parsed.username(), "user")?;
        if user.is_empty() {
            return Err(PgError::url(format!(
                "missing user (write it as postgres://USER@{host})"
            )));
        }
        let mut password = parsed
            .password()
            .map(|p| decode(p, "password"))
            .transpose()?
            .map(Password);
        let dbname = match parsed.path().trim_start_matches('/') {
            "" => "postgres".to_string(),
            db => decode(db, "dbname")?,
        };
        let mut opts = ConnectOptions {
            host,
            port: parsed.port().unwrap_or(DEFAULT_PORT),
            user,
            password: None,
            dbname,
            sslmode: SslMode::default(),
            sslrootcert: None,
            application_name: None,
        };
        let mut password_file = None;
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "sslmode" => {
                    opts.sslmode = SslMode::parse(&value).ok_or_else(|| {
                        PgError::url(format!(
                            "invalid sslmode \"{value}\" (use disable, prefer, require, verify-ca or verify-full)"
                        ))
                    })?;
                }
                "sslrootcert" => opts.sslrootcert = Some(PathBuf::from(value.as_ref())),
                "application_name" => opts.application_name = Some(value.into_owned()),
                "password_file" => password_file = Some(PathBuf::from(value.as_ref())),
                other => {
                    return Err(PgError::url(format!(
                        "unknown URL parameter \"{other}\" (supported: sslmode, sslrootcert, application_name, password_file)"
                    )));
                }
            }
        }
        if password.is_none() {
            if let Some(path) = password_file {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    PgError::url(format!(
                        "cannot read password_file {}: {e} (check the path and its permissions)",
                        path.display()
                    ))
                })?;
                password = Some(Password(text.trim_end_matches(['\r', '\n']).to_string()));
            } else if let Ok(pw) = std::env::var("PGPASSWORD") {
                password = Some(Password(pw));
            }
        }
        opts.password = password;
        Ok(opts)
    }

    /// Sets the name shown in `pg_stat_replication` and matched by `synchronous_standby_names`.
    pub fn application_name(mut self, name: impl Into<String>) -> ConnectOptions {
        self.application_name = Some(name.into());
        self
    }

    /// Sets the password, replacing any from the URL, `password_file` or `PGPASSWORD`.
    pub fn password(mut self, password: impl Into<String>) -> ConnectOptions {
        self.password = Some(Password(password.into()));
        self
    }

    /// The host name or IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The role to log in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The database for non-replication sessions (default `postgres`).
    pub fn dbname(&self) -> &str {
        &self.dbname
    }

    /// The TLS mode.
    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// `host:port`, with brackets around an IPv6 address, as errors print it.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub(crate) fn password_value(&self) -> Option<&Password> {
        self.password.as_ref()
    }

    pub(crate) fn application_name_value(&self) -> Option<&str> {
        self.application_name.as_deref()
    }

    /// The CA file for the verify modes: `sslrootcert`, else `~/.postgresql/root.crt` as libpq does.
    pub(crate) fn root_cert_path(&self) -> PathBuf {
        match &self.sslrootcert {
            Some(path) => path.clone(),
            None => std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_default()
                .join(".postgresql")
                .join("root.crt"),
        }
    }
}

impl fmt::Display for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "postgres://{}@{}/{}?sslmode={}",
            self.user,
            self.addr(),
            self.dbname,
            self.sslmode
        )
    }
}

fn decode(raw: &str, what: &str) -> Result<String, PgError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            PgError::url(format!(
                "the {what} is not valid UTF-8 after percent-decoding (fix its %-escapes)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_url() {
        let opts = ConnectOptions::from_url(
            "postgresql://repl:s%40cret@db.example:6543/app?sslmode=verify-full&sslrootcert=/ca.pem&application_name=ls",
        )
        .unwrap();
        assert_eq!(opts.host(), "db.example");
        assert_eq!(opts.port(), 6543);
        assert_eq!(opts.user(), "repl");
        assert_eq!(opts.password_value().unwrap().as_bytes(), b"s@cret");
        assert_eq!(opts.dbname(), "app");
        assert_eq!(opts.sslmode(), SslMode::VerifyFull);
        assert_eq!(opts.root_cert_path(), PathBuf::from("/ca.pem"));
        assert_eq!(opts.application_name_value(), Some("ls"));
    }

    #[test]
    fn defaults_port_dbname_and_sslmode() {
        let opts = ConnectOptions::from_url("postgres://repl:pw@127.0.0.1").unwrap();
        assert_eq!(opts.port(), 5432);
        assert_eq!(opts.dbname(), "postgres");
        assert_eq!(opts.sslmode(), SslMode::Prefer);
        assert_eq!(opts.addr(), "127.0.0.1:5432");
    }

    #[test]
    fn ipv6_hosts_keep_brackets_only_in_addr() {
        let opts = ConnectOptions::from_url("postgres://repl@[::1]:5433").unwrap();
        assert_eq!(opts.host(), "::1");
        assert_eq!(opts.addr(), "[::1]:5433");
    }

    #[test]
    fn never_shows_the_password() {
        let opts = ConnectOptions::from_url("postgres://repl:hunter2@h/db").unwrap();
        assert!(!format!("{opts:?}").contains("hunter2"));
        assert!(!opts.to_string().contains("hunter2"));
        assert_eq!(opts.to_string(), "postgres://repl@h:5432/db?sslmode=prefer");
    }

    #[test]
    fn reads_password_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "from-file\n").unwrap();
        let url = format!("postgres://repl@h?password_file={}", path.display());
        let opts = ConnectOptions::from_url(&url).unwrap();
        assert_eq!(opts.password_value().unwrap().as_bytes(), b"from-file");
        // The URL's own password wins over the file.
        let url = format!("postgres://repl:inline@h?password_file={}", path.display());
        let opts = ConnectOptions::from_url(&url).unwrap();
        assert_eq!(opts.password_value().unwrap().as_bytes(), b"inline");
    }

    #[test]
    fn rejects_bad_urls_with_the_fix() {
        let err = |url: &str| ConnectOptions::from_url(url).unwrap_err().to_string();
        assert_eq!(
            err("postgres://h:5432"),
            "invalid postgres URL: missing user (write it as postgres://USER@h)"
        );
        assert_eq!(
            err("mysql://u@h"),
            "invalid postgres URL: unsupported scheme \"mysql\" (use postgres:// or postgresql://)"
        );
        assert_eq!(
            err("postgres://u@h?sslmode=always"),
            "invalid postgres URL: invalid sslmode \"always\" (use disable, prefer, require, verify-ca or verify-full)"
        );
        assert_eq!(
            err("postgres://u@h?sslcert=x"),
            "invalid postgres URL: unknown URL parameter \"sslcert\" (supported: sslmode, sslrootcert, application_name, password_file)"
        );
    }
}
