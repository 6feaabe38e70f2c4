//! Connection options, parsed from a `mysql://` URL.

use std::fmt;
use std::path::{Path, PathBuf};

use percent_encoding::percent_decode_str;
use url::Url;

use super::error::MysqlError;
use crate::tls::SslMode;

/// The default MySQL and MariaDB port.
const DEFAULT_PORT: u16 = 3306;

/// A password that never shows in `Debug` output.
#[derive(Clone)]
pub(crate) struct Password(String);

impl Password {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
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
    sslmode: SslMode,
    sslrootcert: Option<PathBuf>,
    server_public_key: Option<String>,
}

impl ConnectOptions {
    /// Parses `mysql://user[:password]@host[:port][?sslmode=…&sslrootcert=…&server_public_key=…]`.
    ///
    /// The password comes from the URL, else `password` (the source's `password_file`,
    /// already read), else env `MYSQL_PWD`. `server_public_key` is a PEM file with the
    /// server's RSA key, for caching_sha2_password without TLS.
    pub fn from_url(url: &str, password: Option<String>) -> Result<ConnectOptions, MysqlError> {
        let parsed = Url::parse(url).map_err(|e| {
            MysqlError::url(format!(
                "{e} (write it as mysql://USER[:PASSWORD]@HOST[:PORT])"
            ))
        })?;
        if !matches!(parsed.scheme(), "mysql" | "mariadb") {
            return Err(MysqlError::url(format!(
                "unsupported scheme \"{}\" (use mysql:// or mariadb://)",
                parsed.scheme()
            )));
        }
        let host = match parsed.host_str() {
            Some(h) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']'),
            _ => {
                return Err(MysqlError::url(
                    "missing host (write it as mysql://USER@HOST[:PORT])".to_string(),
                ));
            }
        };
        let host = decode(host, "host")?;
        let user = decode(parsed.username(), "user")?;
        if user.is_empty() {
            return Err(MysqlError::url(format!(
                "missing user (write it as mysql://USER@{host})"
            )));
        }
        if !matches!(parsed.path(), "" | "/") {
            return Err(MysqlError::url(format!(
                "unexpected path \"{}\": a binlog source reads every database (remove it from the URL)",
                parsed.path()
            )));
        }
        let url_password = parsed
            .password()
            .map(|p| decode(p, "password"))
            .transpose()?;
        let mut opts = ConnectOptions {
            host,
            port: parsed.port().unwrap_or(DEFAULT_PORT),
            user,
            password: None,
            sslmode: SslMode::default(),
            sslrootcert: None,
            server_public_key: None,
        };
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "sslmode" => {
                    opts.sslmode = SslMode::parse(&value).ok_or_else(|| {
                        MysqlError::url(format!(
                            "invalid sslmode \"{value}\" (use disable, prefer, require, verify-ca or verify-full)"
                        ))
                    })?;
                }
                "sslrootcert" => opts.sslrootcert = Some(PathBuf::from(value.as_ref())),
                "server_public_key" => {
                    let path = PathBuf::from(value.as_ref());
                    let pem = std::fs::read_to_string(&path).map_err(|e| {
                        MysqlError::url(format!(
                            "cannot read server_public_key {}: {e} (set it to the server's RSA public key PEM file, \
                             or remove it to fetch the key from the server)",
                            path.display()
                        ))
                    })?;
                    opts.server_public_key = Some(pem);
                }
                other => {
                    return Err(MysqlError::url(format!(
                        "unknown URL parameter \"{other}\" (supported: sslmode, sslrootcert, server_public_key)"
                    )));
                }
            }
        }
        opts.password = url_password
            .or(password)
            .or_else(|| std::env::var("MYSQL_PWD").ok())
            .map(Password);
        Ok(opts)
    }

    /// Sets the password, replacing any from the URL, `password_file` or `MYSQL_PWD`.
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

    /// The user to log in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The TLS mode.
    pub fn sslmode(&self) -> SslMode {
        self.sslmode
    }

    /// The CA file for the verify modes, if the URL names one.
    pub fn sslrootcert(&self) -> Option<&Path> {
        self.sslrootcert.as_deref()
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

    pub(crate) fn server_public_key_pem(&self) -> Option<&str> {
        self.server_public_key.as_deref()
    }
}

impl fmt::Display for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mysql://{}@{}?sslmode={}",
            self.user,
            self.addr(),
            self.sslmode
        )
    }
}

fn decode(raw: &str, what: &str) -> Result<String, MysqlError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            MysqlError::url(format!(
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
            "mysql://repl:s%40cret@db.example:3307?sslmode=verify-full&sslrootcert=/ca.pem",
            None,
        )
        .unwrap();
        assert_eq!(opts.host(), "db.example");
        assert_eq!(opts.port(), 3307);
        assert_eq!(opts.user(), "repl");
        assert_eq!(opts.password_value().unwrap().as_str(), "s@cret");
        assert_eq!(opts.sslmode(), SslMode::VerifyFull);
        assert_eq!(opts.sslrootcert(), Some(Path::new("/ca.pem")));
    }

    #[test]
    fn defaults_port_and_sslmode() {
        let opts = ConnectOptions::from_url("mysql://repl@127.0.0.1", None).unwrap();
        assert_eq!(opts.port(), 3306);
        assert_eq!(opts.sslmode(), SslMode::Prefer);
        assert_eq!(opts.addr(), "127.0.0.1:3306");
        let v6 = ConnectOptions::from_url("mysql://repl@[::1]:3307/", None).unwrap();
        assert_eq!((v6.host(), v6.addr()), ("::1", "[::1]:3307".to_string()));
    }

    #[test]
    fn the_urls_password_wins_over_the_override() {
        let url = ConnectOptions::from_url("mysql://repl:inline@h", Some("file".into())).unwrap();
        assert_eq!(url.password_value().unwrap().as_str(), "inline");
        let file = ConnectOptions::from_url("mysql://repl@h", Some("file".into())).unwrap();
        assert_eq!(file.password_value().unwrap().as_str(), "file");
    }

    #[test]
    fn never_shows_the_password() {
        let opts = ConnectOptions::from_url("mysql://repl:hunter2@h", None).unwrap();
        assert!(!format!("{opts:?}").contains("hunter2"));
        assert_eq!(opts.to_string(), "mysql://repl@h:3306?sslmode=prefer");
    }

    #[test]
    fn rejects_bad_urls_with_the_fix() {
        let err = |url: &str| ConnectOptions::from_url(url, None).unwrap_err().to_string();
        assert_eq!(
            err("mysql://h:3306"),
            "invalid mysql URL: missing user (write it as mysql://USER@h)"
        );
        assert_eq!(
            err("postgres://u@h"),
            "invalid mysql URL: unsupported scheme \"postgres\" (use mysql:// or mariadb://)"
        );
        assert_eq!(
            err("mysql://u@h?sslmode=always"),
            "invalid mysql URL: invalid sslmode \"always\" (use disable, prefer, require, verify-ca or verify-full)"
        );
        assert_eq!(
            err("mysql://u@h?ssl=1"),
            "invalid mysql URL: unknown URL parameter \"ssl\" (supported: sslmode, sslrootcert, server_public_key)"
        );
        assert_eq!(
            err("mysql://u@h/shop"),
            "invalid mysql URL: unexpected path \"/shop\": a binlog source reads every database (remove it from the URL)"
        );
        assert!(err("mysql://u@h:99999").starts_with("invalid mysql URL: invalid port number"));
    }

    #[test]
    fn rejects_an_unreadable_public_key_file() {
        let err = ConnectOptions::from_url("mysql://u@h?server_public_key=/nonexistent.pem", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("invalid mysql URL: cannot read server_public_key /nonexistent.pem:"),
            "{err}"
        );
    }
}
