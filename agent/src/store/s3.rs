//! S3 and S3-compatible stores (MinIO, s3s, Ceph RGW ...), through aws-sdk-s3.
//!
//! An object is durable once PutObject or CompleteMultipartUpload returned
//! success (DESIGN.md §1). Objects at or above the multipart threshold go up in
//! parts, so a large base-backup object neither hits the single-PUT limit nor
//! has to be resent whole after a network blip: the SDK retries each part.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::environment::EnvironmentVariableRegionProvider;
use aws_config::meta::region::RegionProviderChain;
use aws_config::profile::ProfileFileRegionProvider;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use bytes::Bytes;

use super::{ObjectInfo, Store, StoreError, TEMP_PREFIX, check_key, check_prefix};

const MIB: usize = 1024 * 1024;
/// Objects this large or larger are uploaded in parts.
pub const DEFAULT_MULTIPART_THRESHOLD: usize = 16 * MIB;
/// The size of each part of a multipart upload.
pub const DEFAULT_PART_SIZE: usize = 8 * MIB;
/// S3's smallest allowed part (all but the last); smaller part sizes are raised to it.
pub const MIN_PART_SIZE: usize = 5 * MIB;
/// S3's largest part count; larger objects get proportionally larger parts.
const MAX_PARTS: usize = 10_000;
/// The region used when neither the options, the environment nor a profile names one.
const DEFAULT_REGION: &str = "us-east-1";

/// How to reach a bucket; [`crate::store::open`] builds this from a `s3://` URL.
#[derive(Clone)]
pub struct S3Options {
    /// The bucket name.
    pub bucket: String,
    /// The key prefix every object lives under, without leading or trailing '/'; may be empty.
    pub prefix: String,
    /// The endpoint of an S3-compatible store; AWS when `None`.
    pub endpoint: Option<String>,
    /// The region; the environment or profile, else `us-east-1`, when `None`.
    pub region: Option<String>,
    /// Address the bucket as `endpoint/bucket`, as most S3-compatible stores need.
    pub path_style: bool,
    /// `(access key id, secret access key)`; the standard AWS credential chain when `None`.
    pub credentials: Option<(String, String)>,
    /// Objects of at least this many bytes are uploaded in parts.
    pub multipart_threshold: usize,
    /// The part size of multipart uploads; at least [`MIN_PART_SIZE`].
    pub part_size: usize,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            bucket: String::new(),
            prefix: String::new(),
            endpoint: None,
            region: None,
            path_style: false,
            credentials: None,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
        }
    }
}

// By hand, so that the secret key never reaches a log line.
impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("path_style", &self.path_style)
            .field("access_key", &self.credentials.as_ref().map(|(id, _)| id))
            .field("multipart_threshold", &self.multipart_threshold)
            .field("part_size", &self.part_size)
            .finish()
    }
}

/// A store in an S3 bucket, under an optional key prefix.
pub struct S3Store {
    client: Client,
    bucket: String,
    /// `""`, or the configured prefix followed by '/'.
    prefix: String,
    /// Where requests go, for messages.
    endpoint: String,
    url: String,
    multipart_threshold: usize,
    part_size: usize,
}

impl S3Store {
    /// Builds the client; nothing is sent until the first request.
    pub async fn new(options: S3Options) -> Result<Self, StoreError> {
        let prefix = options.prefix.trim_matches('/');
        let url = if prefix.is_empty() {
            format!("s3://{}", options.bucket)
        } else {
            format!("s3://{}/{prefix}", options.bucket)
        };
        let invalid = |reason: &str| StoreError::InvalidUrl {
            url: url.clone(),
            reason: reason.to_owned(),
        };
        if options.bucket.is_empty() || options.bucket.contains('/') {
            return Err(invalid("the bucket name is empty or contains '/'"));
        }
        if !prefix.is_empty() && check_key(prefix).is_err() {
            return Err(invalid(
                "the prefix has an empty, '.', '..' or '.tmp-' path component",
            ));
        }

        // Unlike the SDK's default chain, this skips the instance metadata
        // service: a region is needed to sign, not worth a network round trip.
        let region = RegionProviderChain::first_try(options.region.clone().map(Region::new))
            .or_else(EnvironmentVariableRegionProvider::new())
            .or_else(ProfileFileRegionProvider::new())
            .region()
            .await
            .unwrap_or_else(|| Region::from_static(DEFAULT_REGION));
        let endpoint = options
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));

        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .retry_config(retry_config())
            .timeout_config(timeout_config());
        if let Some((id, secret)) = &options.credentials {
            loader =
                loader.credentials_provider(Credentials::new(id, secret, None, None, "logship"));
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(options.path_style)
            // S3-compatible stores reject the newer default checksum trailers.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &options.endpoint {
            config = config.endpoint_url(endpoint);
        }

        Ok(S3Store {
            client: Client::from_conf(config.build()),
            bucket: options.bucket,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            endpoint,
            url,
            multipart_threshold: options.multipart_threshold,
            part_size: options.part_size.max(MIN_PART_SIZE),
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn put_single(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| self.sdk_error("put", key, e))?;
        Ok(())
    }

    async fn put_multipart(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        let full_key = self.full_key(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full_key)
            .send()
            .await
            .map_err(|e| self.sdk_error("put", key, e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| {
                self.malformed("put", key, "CreateMultipartUpload returned no upload id")
            })?
            .to_owned();
        tracing::debug!(
            key,
            size = data.len(),
            upload_id,
            "multipart upload started"
        );

        let result = match self.upload_parts(key, &full_key, &upload_id, data).await {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&full_key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.sdk_error("put", key, e)),
            Err(e) => Err(e),
        };
        if result.is_err() {
            // Uploaded parts are billed until aborted; the original error matters more.
            let abort = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&full_key)
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(e) = abort {
                let e = self.sdk_error("abort", key, e);
                tracing::warn!(key, upload_id, "{e}");
            }
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        full_key: &str,
        upload_id: &str,
        data: Bytes,
    ) -> Result<Vec<CompletedPart>, StoreError> {
        let part_size = self.part_size.max(data.len().div_ceil(MAX_PARTS));
        let mut rest = data;
        let mut parts = Vec::new();
        let mut number: i32 = 0;
        while !rest.is_empty() {
            let part = rest.split_to(part_size.min(rest.len()));
            number += 1;
            let uploaded = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(full_key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(part))
                .send()
                .await
                .map_err(|e| self.sdk_error("put", key, e))?;
            let e_tag = uploaded
                .e_tag()
                .ok_or_else(|| self.malformed("put", key, "UploadPart returned no ETag"))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(e_tag)
                    .build(),
            );
        }
        Ok(parts)
    }

    fn malformed(&self, op: &'static str, key: &str, detail: &str) -> StoreError {
        StoreError::Service {
            op,
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            detail: detail.to_owned(),
            transient: false,
        }
    }

    /// Maps an SDK error on `key` to the [`StoreError`] that names its fix.
    fn sdk_error<E>(&self, op: &'static str, key: &str, err: SdkError<E>) -> StoreError
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let endpoint = self.endpoint.clone();
        let bucket = self.bucket.clone();
        if let Some(reason) = credentials_problem(&err) {
            return StoreError::NoCredentials {
                endpoint,
                bucket,
                reason,
            };
        }
        match &err {
            SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                let code = err.code();
                let detail = match (code, err.message()) {
                    (Some(code), Some(message)) => format!("{code}: {}", one_line(message)),
                    (Some(code), None) => code.to_owned(),
                    (None, _) => match status {
                        Some(status) => format!("HTTP {status}: {}", error_chain(&err)),
                        None => error_chain(&err),
                    },
                };
                match (code, status) {
                    (Some("NoSuchKey" | "NotFound"), _) | (None, Some(404)) => {
                        StoreError::NotFound {
                            key: key.to_owned(),
                        }
                    }
                    (Some("NoSuchBucket"), _) => StoreError::NoSuchBucket { endpoint, bucket },
                    (Some("SignatureDoesNotMatch"), _) => {
                        StoreError::BadSignature { endpoint, bucket }
                    }
                    (Some(code @ ("InvalidAccessKeyId" | "NotSignedUp")), _) => {
                        StoreError::UnknownAccessKey {
                            endpoint,
                            bucket,
                            code: code.to_owned(),
                        }
                    }
                    (Some("AccessDenied" | "AllAccessDisabled"), _) | (None, Some(403)) => {
                        StoreError::AccessDenied {
                            endpoint,
                            bucket,
                            key: key.to_owned(),
                        }
                    }
                    _ => StoreError::Service {
                        op,
                        endpoint,
                        bucket,
                        key: key.to_owned(),
                        detail,
                        transient: is_transient_reply(code, status),
                    },
                }
            }
            SdkError::TimeoutError(_) => StoreError::Interrupted {
                op,
                endpoint,
                bucket,
                key: key.to_owned(),
                reason: "the request timed out".to_owned(),
            },
            SdkError::DispatchFailure(failure) => StoreError::Unreachable {
                endpoint,
                reason: if failure.is_timeout() {
                    "connection timed out".to_owned()
                } else {
                    connection_problem(&err)
                },
            },
            _ => StoreError::Service {
                op,
                endpoint,
                bucket,
                key: key.to_owned(),
                detail: error_chain(&err),
                transient: false,
            },
        }
    }
}

#[async_trait]
impl Store for S3Store {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), StoreError> {
        check_key(key)?;
        if data.len() < self.multipart_threshold {
            self.put_single(key, data).await
        } else {
            self.put_multipart(key, data).await
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        check_key(key)?;
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.sdk_error("get", key, e))?;
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Interrupted {
                op: "get",
                endpoint: self.endpoint.clone(),
                bucket: self.bucket.clone(),
                key: key.to_owned(),
                reason: error_chain(&e),
            })?;
        Ok(body.into_bytes())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        check_prefix(prefix)?;
        let mut found = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.full_key(prefix))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| self.sdk_error("list", prefix, e))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                // Directory markers and temp names are not objects logship wrote.
                if check_key(key).is_err() {
                    continue;
                }
                found.push(ObjectInfo {
                    key: key.to_owned(),
                    size: object
                        .size()
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(0),
                });
            }
            token = page.next_continuation_token().map(str::to_owned);
            if token.is_none() || page.is_truncated() != Some(true) {
                break;
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        check_key(key)?;
        let deleted = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.sdk_error("delete", key, e));
        match deleted {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map(|_| ()),
        }
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        // Listing first tells a missing bucket apart from a refused write.
        self.client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&self.prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| self.sdk_error("list", "", e))?;
        let probe = format!(
            "{}{TEMP_PREFIX}probe-{:016x}",
            self.prefix,
            rand::random::<u64>()
        );
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&probe)
            .body(ByteStream::from_static(b"logship write probe"))
            .send()
            .await
            .map_err(|e| self.sdk_error("put", &probe, e))?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&probe)
            .send()
            .await
            .map_err(|e| self.sdk_error("delete", &probe, e))?;
        Ok(())
    }

    fn url(&self) -> &str {
        &self.url
    }
}

/// Retries with exponential backoff and jitter: about half a minute in all
/// before a dead endpoint is reported.
fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(Duration::from_millis(500))
        .with_max_backoff(Duration::from_secs(10))
}

/// Fails fast on a dead endpoint, yet gives a large part time to upload: the
/// read timeout runs from the start of the request to the response's first byte.
fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(120))
        .operation_attempt_timeout(Duration::from_secs(300))
        .build()
}

/// Whether S3 asks to slow down, or failed on its side.
fn is_transient_reply(code: Option<&str>, status: Option<u16>) -> bool {
    matches!(
        code,
        Some("SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable")
    ) || status.is_some_and(|s| s >= 500 || s == 429)
}

/// The errors behind `err`, outermost first.
fn sources<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e| e.source())
}

/// Why credentials could not be loaded, if that is what failed.
fn credentials_problem(err: &(dyn StdError + 'static)) -> Option<String> {
    sources(err)
        .find(|e| e.is::<CredentialsError>())
        .map(error_chain)
}

/// Why no connection could be made, in the words of the innermost error.
fn connection_problem(err: &(dyn StdError + 'static)) -> String {
    let io = sources(err).find_map(|e| e.downcast_ref::<io::Error>());
    match io.map(io::Error::kind) {
        Some(io::ErrorKind::ConnectionRefused) => "connection refused".to_owned(),
        Some(io::ErrorKind::ConnectionReset) => "connection reset".to_owned(),
        Some(io::ErrorKind::ConnectionAborted) => "connection aborted".to_owned(),
        Some(io::ErrorKind::TimedOut) => "connection timed out".to_owned(),
        _ => sources(err)
            .last()
            .map_or_else(|| error_chain(err), |e| one_line(&e.to_string())),
    }
}

/// `err` and its sources on one line, skipping repeats.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for e in sources(err) {
        let text = one_line(&e.to_string());
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
