//! Both store backends against the conformance suite, and their failures
//! against the exact one-line messages a user sees.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use logship::store::fs::FsStore;
use logship::store::s3::{S3Options, S3Store};
use logship::store::{Store, StoreConfig, StoreError, open};
use logship_tests::s3::S3Server;
use logship_tests::store_conformance::{LARGE_OBJECT_SIZE, random_bytes, run_conformance};
use logship_tests::util::{free_port, temp_dir};

#[tokio::test]
async fn fs_store_conformance() {
    let dir = temp_dir("fs-store");
    // The root does not exist yet: the first put must create it.
    let url = format!("file://{}/store", dir.path().display());
    let store = open(&StoreConfig {
        url: url.clone(),
        ..StoreConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(store.url(), url);
    run_conformance(store.as_ref()).await;
}

#[tokio::test]
async fn s3_store_conformance() {
    let server = S3Server::start();
    let store = S3Store::new(server.options("archive/prod")).await.unwrap();
    assert_eq!(store.url(), "s3://logship-test/archive/prod");
    run_conformance(&store).await;
}

#[tokio::test]
async fn s3_store_keeps_objects_under_its_prefix() {
    let server = S3Server::start();
    let store = S3Store::new(server.options("p/q")).await.unwrap();
    store
        .put("x/y", Bytes::from_static(b"hello"))
        .await
        .unwrap();
    let stored = server.root_dir().join(server.bucket()).join("p/q/x/y");
    assert_eq!(std::fs::read(&stored).unwrap(), b"hello");

    let whole_bucket = S3Store::new(server.options("")).await.unwrap();
    let keys: Vec<_> = whole_bucket
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["p/q/x/y"]);
    // "p/qq" shares the prefix's letters, not its directory.
    let sibling = S3Store::new(server.options("p/qq")).await.unwrap();
    assert_eq!(sibling.list("").await.unwrap(), []);
}

#[tokio::test]
async fn s3_large_objects_go_up_in_parts() {
    let server = S3Server::start();
    let store = S3Store::new(server.options("")).await.unwrap();
    store
        .put("large", random_bytes(LARGE_OBJECT_SIZE))
        .await
        .unwrap();
    store.put("small", random_bytes(1024)).await.unwrap();

    // A multipart ETag is the MD5 of the part MD5s, followed by `-<parts>`.
    let client = sdk_client(&server);
    let etag = async |key: &str| {
        let head = client
            .head_object()
            .bucket(server.bucket())
            .key(key)
            .send()
            .await
            .unwrap();
        head.e_tag().unwrap().trim_matches('"').to_owned()
    };
    assert!(etag("large").await.ends_with("-5"), "20 MiB in 5 MiB parts");
    assert!(!etag("small").await.contains('-'), "a single PUT");
}

#[tokio::test]
async fn s3_wrong_secret_is_a_signature_error() {
    let server = S3Server::start();
    let options = S3Options {
        credentials: Some((server.access_key().to_owned(), "not-the-secret".to_owned())),
        ..server.options("")
    };
    let err = S3Store::new(options)
        .await
        .unwrap()
        .check_writable()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "S3 rejected the request signature at {} (bucket \"logship-test\"): SignatureDoesNotMatch (check AWS_SECRET_ACCESS_KEY, AWS_ACCESS_KEY_ID and the region)",
            server.endpoint()
        )
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn s3_unknown_access_key_names_the_key_id() {
    let server = S3Server::start();
    let options = S3Options {
        credentials: Some(("no-such-key".to_owned(), server.secret_key().to_owned())),
        ..server.options("")
    };
    let err = S3Store::new(options)
        .await
        .unwrap()
        .check_writable()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "S3 does not accept the access key id at {} (bucket \"logship-test\"): NotSignedUp (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
            server.endpoint()
        )
    );
}

#[tokio::test]
async fn s3_missing_bucket_says_create_it() {
    let server = S3Server::start();
    let options = S3Options {
        bucket: "no-such-bucket".to_owned(),
        ..server.options("")
    };
    let err = S3Store::new(options)
        .await
        .unwrap()
        .check_writable()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "bucket \"no-such-bucket\" does not exist at {} (create it, or fix the store URL)",
            server.endpoint()
        )
    );
}

#[tokio::test]
async fn s3_unreachable_endpoint_is_transient() {
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let options = S3Options {
        bucket: "b".to_owned(),
        endpoint: Some(endpoint.clone()),
        region: Some("us-east-1".to_owned()),
        path_style: true,
        credentials: Some(("ak".to_owned(), "sk".to_owned())),
        ..S3Options::default()
    };
    // Slow on purpose: the store retries with backoff before giving up.
    let err = S3Store::new(options)
        .await
        .unwrap()
        .check_writable()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot reach S3 endpoint {endpoint}: connection refused (check the endpoint and that the service is running)"
        )
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn fs_root_under_a_regular_file_is_not_writable() {
    let dir = temp_dir("fs-store");
    std::fs::write(dir.path().join("file"), b"").unwrap();
    let root = dir.path().join("file/store");
    let store = FsStore::new(&root).unwrap();
    let err = store.check_writable().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "store directory {} is not writable: Not a directory (os error 20) (give the agent's user write access to it, or choose another store URL)",
            root.display()
        )
    );
    assert!(matches!(err, StoreError::NotWritable { .. }));
    // A put reports the same cause for the object's key.
    let err = store
        .put("a/b", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot write key \"a/b\" in store file://{}: Not a directory (os error 20) (check the store's disk: free space, mount and file system)",
            root.display()
        )
    );
}

/// A plain SDK client on `server`, to look at stored objects from outside the store.
fn sdk_client(server: &S3Server) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(server.endpoint())
        .region(Region::new("us-east-1"))
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            server.access_key(),
            server.secret_key(),
            None,
            None,
            "test",
        ))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}
