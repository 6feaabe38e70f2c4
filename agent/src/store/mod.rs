//! Object storage: one small async trait, with a file and an S3 backend.
//!
//! Keys are `/`-separated and relative to the store's root (the directory of a
//! `file://` URL, or the prefix of an `s3://bucket/prefix` URL). The archive
//! builds every key through `logship_protocol::archive::key`; nothing here
//! interprets them.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Deserialize;

pub mod fs;
pub mod s3;

/// An object's key and stored size, as returned by [`Store::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

/// The storage contract every backend meets (see the conformance suite in `tests/`).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes `data` at `key`, replacing any previous object. When this returns
    /// `Ok`, the object is durable (DESIGN.md §1): a file was fsynced, renamed
    /// into place and its directory fsynced, or an S3 PUT/CompleteMultipartUpload
    /// succeeded. A reader never sees a partly written object.
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError>;

    /// Reads the whole object at `key`; [`StoreError::NotFound`] if there is none.
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;

    /// Every object whose key starts with `prefix`, sorted by key (byte order).
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;

    /// Removes the object at `key`. Removing a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Checks that the store is reachable and writable, without leaving anything behind.
    async fn check_writable(&self) -> Result<(), StoreError>;

    /// The store's URL, for messages (never carries credentials).
    fn url(&self) -> &str;
}

/// Why a store operation failed. Each message is one line naming the cause and
/// the fix; none carries credentials.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// There is no object at `key`.
    #[error("no object at key {key:?} in the store (it was never written, or it was pruned)")]
    NotFound { key: String },

    /// The store directory cannot be created or written.
    #[error(
        "store directory {path} is not writable: {source} (give the agent's user write access to it, or choose another store URL)"
    )]
    NotWritable {
        path: String,
        #[source]
        source: io::Error,
    },

    /// A file operation other than a permission problem failed.
    #[error(
        "cannot {op} key {key:?} in store {url}: {source} (check the store's disk: free space, mount and file system)"
    )]
    Io {
        op: &'static str,
        url: String,
        key: String,
        #[source]
        source: io::Error,
    },

    /// S3 refused the credentials access to the bucket or key.
    #[error(
        "S3 denied access to key {key:?} at {endpoint} (bucket {bucket:?}): AccessDenied (grant the credentials s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket and prefix)"
    )]
    AccessDenied {
        endpoint: String,
        bucket: String,
        key: String,
    },

    /// S3 computed a different request signature: wrong secret key or region.
    #[error(
        "S3 rejected the request signature at {endpoint} (bucket {bucket:?}): SignatureDoesNotMatch (check AWS_SECRET_ACCESS_KEY, AWS_ACCESS_KEY_ID and the region)"
    )]
    BadSignature { endpoint: String, bucket: String },

    /// S3 does not know the access key id (`InvalidAccessKeyId`, or `NotSignedUp`
    /// from some S3-compatible stores).
    #[error(
        "S3 does not accept the access key id at {endpoint} (bucket {bucket:?}): {code} (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
    )]
    UnknownAccessKey {
        endpoint: String,
        bucket: String,
        code: String,
    },

    /// No credentials could be found through the AWS credential chain.
    #[error(
        "no AWS credentials for S3 at {endpoint} (bucket {bucket:?}): {reason} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or give the host an IAM role)"
    )]
    NoCredentials {
        endpoint: String,
        bucket: String,
        reason: String,
    },

    /// The bucket of the store URL does not exist.
    #[error("bucket {bucket:?} does not exist at {endpoint} (create it, or fix the store URL)")]
    NoSuchBucket { endpoint: String, bucket: String },

    /// No connection to the S3 endpoint could be made.
    #[error(
        "cannot reach S3 endpoint {endpoint}: {reason} (check the endpoint and that the service is running)"
    )]
    Unreachable { endpoint: String, reason: String },

    /// A request was cut short after it reached S3: a timeout or a broken response.
    #[error(
        "S3 {op} of key {key:?} at {endpoint} (bucket {bucket:?}) was interrupted: {reason} (check the network, then retry)"
    )]
    Interrupted {
        op: &'static str,
        endpoint: String,
        bucket: String,
        key: String,
        reason: String,
    },

    /// S3 answered with an error not covered above.
    #[error(
        "S3 {op} of key {key:?} at {endpoint} (bucket {bucket:?}) failed: {detail} (check the service's status and logs, then retry)"
    )]
    Service {
        op: &'static str,
        endpoint: String,
        bucket: String,
        key: String,
        /// The S3 error code and message, or the HTTP status.
        detail: String,
        /// Throttling (`SlowDown`, 429) or a server-side (5xx) error.
        transient: bool,
    },

    /// A key that could escape the store's root or collide with its temp files.
    #[error(
        "invalid store key {key:?}: {reason} (keys are relative '/'-separated paths; this is a bug in logship)"
    )]
    InvalidKey { key: String, reason: &'static str },

    /// A store URL that none of the accepted forms matches.
    #[error(
        "invalid store URL {url:?}: {reason} (use file:///absolute/path, file://./relative/path or s3://bucket/prefix)"
    )]
    InvalidUrl { url: String, reason: String },
}

impl StoreError {
    /// Whether the object is simply absent, as opposed to the store failing.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    /// Whether retrying the same operation later may succeed: timeouts,
    /// connection failures, throttling and server-side (5xx) errors.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Unreachable { .. } | StoreError::Interrupted { .. } => true,
            StoreError::Service { transient, .. } => *transient,
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }
}

/// The `[store]` table of the configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `file:///abs/path`, `file://./rel/path` or `s3://bucket/optional/prefix`.
    pub url: String,
    /// The endpoint of an S3-compatible store, such as `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// The S3 region; the AWS environment or profile, else `us-east-1`, when unset.
    pub region: Option<String>,
    /// Address buckets as `endpoint/bucket` rather than `bucket.endpoint`.
    #[serde(default)]
    pub path_style: bool,
}

/// Opens the store that `config` names. Nothing is read or written yet: call
/// [`Store::check_writable`] to find out whether it works.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    let url = config.url.as_str();
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    if let Some(path) = url.strip_prefix("file://") {
        if config.endpoint.is_some() || config.region.is_some() || config.path_style {
            return Err(invalid(
                "endpoint, region and path_style apply to s3:// URLs only",
            ));
        }
        if path.is_empty() {
            return Err(invalid("the path is empty"));
        }
        Ok(Arc::new(fs::FsStore::new(path)?))
    } else if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("the bucket name is empty"));
        }
        // S3Store::new checks the prefix.
        let options = s3::S3Options {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: config.endpoint.clone(),
            region: config.region.clone(),
            path_style: config.path_style,
            ..s3::S3Options::default()
        };
        Ok(Arc::new(s3::S3Store::new(options).await?))
    } else {
        Err(invalid("the scheme is neither file:// nor s3://"))
    }
}

/// The file name prefix of objects being written; never a valid key component.
const TEMP_PREFIX: &str = ".tmp-";

/// Rejects keys that could escape the store's root, or that a backend would
/// hide (temp files), so that a key valid on one backend is valid on all.
fn check_key(key: &str) -> Result<(), StoreError> {
    let invalid = |reason| StoreError::InvalidKey {
        key: key.to_owned(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("it is empty"));
    }
    if key.starts_with('/') {
        return Err(invalid("it starts with '/'"));
    }
    for part in key.split('/') {
        match part {
            "" => return Err(invalid("it has an empty path component")),
            "." | ".." => return Err(invalid("it has a '.' or '..' path component")),
            _ if part.starts_with(TEMP_PREFIX) => {
                return Err(invalid(
                    "'.tmp-' components are reserved for objects being written",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks a [`Store::list`] prefix: empty, or the start of a valid key
/// (possibly ending with '/').
fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_key(prefix.strip_suffix('/').unwrap_or(prefix)).map_err(|_| StoreError::InvalidKey {
        key: prefix.to_owned(),
        reason: "a list prefix must be empty or the start of a valid key",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_escape_or_collide_are_rejected() {
        for key in ["", "/a", "a//b", "a/", "../a", "a/../b", "./a", "a/.tmp-x"] {
            assert!(
                matches!(check_key(key), Err(StoreError::InvalidKey { .. })),
                "{key:?}"
            );
        }
        for key in ["a", "a/b/c", "wal/0000000100000000000000A1", "a.b/..c"] {
            check_key(key).unwrap();
        }
    }

    #[test]
    fn prefixes_may_be_empty_or_end_with_a_slash() {
        for prefix in ["", "a", "a/", "a/b", "a/bc/"] {
            check_prefix(prefix).unwrap();
        }
        for prefix in ["/", "/a", "a//b", "a//", "../", "a/../"] {
            assert!(check_prefix(prefix).is_err(), "{prefix:?}");
        }
    }

    #[tokio::test]
    async fn unknown_schemes_and_empty_parts_name_the_accepted_forms() {
        let cases = [
            ("http://x/y", "the scheme is neither file:// nor s3://"),
            ("file://", "the path is empty"),
            ("s3:///prefix", "the bucket name is empty"),
            (
                "s3://b/a//c",
                "the prefix has an empty, '.', '..' or '.tmp-' path component",
            ),
        ];
        for (url, reason) in cases {
            let config = StoreConfig {
                url: url.to_owned(),
                ..StoreConfig::default()
            };
            let err = open(&config).await.err().unwrap();
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid store URL {url:?}: {reason} (use file:///absolute/path, file://./relative/path or s3://bucket/prefix)"
                )
            );
        }
    }

    #[tokio::test]
    async fn file_urls_resolve_relative_paths_against_the_current_dir() {
        let cwd = std::env::current_dir().unwrap();
        for (url, path) in [
            (
                "file:///var/lib/logship",
                std::path::PathBuf::from("/var/lib/logship"),
            ),
            ("file://./logship-data", cwd.join("logship-data")),
            ("file://logship-data", cwd.join("logship-data")),
        ] {
            let config = StoreConfig {
                url: url.to_owned(),
                ..StoreConfig::default()
            };
            let store = open(&config).await.unwrap();
            assert_eq!(store.url(), format!("file://{}", path.display()), "{url}");
        }
    }
}
