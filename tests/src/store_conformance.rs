//! One suite that every [`Store`] backend must pass, so that the archive can
//! rely on the contract and not on a backend's quirks.
//!
//! It keeps a model of what it wrote and checks the store against it after
//! each step; at the end `list("")` must equal the model exactly, which also
//! proves that no temp file or probe object is ever listed.

use std::collections::BTreeMap;

use bytes::Bytes;
use logship::store::{ObjectInfo, Store, StoreError};
use rand::RngCore;

/// Big enough to force a multipart upload with the test S3 options (8 MiB
/// threshold, 5 MiB parts), with a short last part.
pub const LARGE_OBJECT_SIZE: usize = 20 * 1024 * 1024 + 4321;

/// Random bytes, so that a misplaced or truncated part cannot go unnoticed.
pub fn random_bytes(len: usize) -> Bytes {
    let mut data = vec![0u8; len];
    rand::rng().fill_bytes(&mut data);
    Bytes::from(data)
}

/// What the store should hold.
#[derive(Default)]
struct Model {
    objects: BTreeMap<String, Bytes>,
}

impl Model {
    async fn put(&mut self, store: &dyn Store, key: &str, data: Bytes) {
        store
            .put(key, data.clone())
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
        self.objects.insert(key.to_owned(), data);
    }

    async fn delete(&mut self, store: &dyn Store, key: &str) {
        store
            .delete(key)
            .await
            .unwrap_or_else(|e| panic!("delete {key}: {e}"));
        self.objects.remove(key);
    }

    /// What `list(prefix)` must return.
    fn list(&self, prefix: &str) -> Vec<ObjectInfo> {
        self.objects
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, data)| ObjectInfo {
                key: key.clone(),
                size: data.len() as u64,
            })
            .collect()
    }
}

async fn get(store: &dyn Store, key: &str) -> Bytes {
    store
        .get(key)
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"))
}

async fn list(store: &dyn Store, prefix: &str) -> Vec<ObjectInfo> {
    store
        .list(prefix)
        .await
        .unwrap_or_else(|e| panic!("list {prefix:?}: {e}"))
}

fn keys(objects: &[ObjectInfo]) -> Vec<&str> {
    objects.iter().map(|o| o.key.as_str()).collect()
}

async fn assert_not_found(store: &dyn Store, key: &str) {
    match store.get(key).await {
        Err(e) if e.is_not_found() => {
            assert_eq!(
                e.to_string(),
                format!(
                    "no object at key {key:?} in the store (it was never written, or it was pruned)"
                )
            );
            assert!(!e.is_transient(), "{e}");
        }
        Err(e) => panic!("get {key}: expected NotFound, got {e}"),
        Ok(data) => panic!("get {key}: expected NotFound, got {} bytes", data.len()),
    }
}

/// Runs the whole contract against `store`, which must start empty.
pub async fn run_conformance(store: &dyn Store) {
    let mut model = Model::default();
    assert_eq!(list(store, "").await, [], "the store must start empty");
    store
        .check_writable()
        .await
        .expect("check_writable on an empty store");
    assert_eq!(
        list(store, "").await,
        [],
        "check_writable left something behind"
    );

    // Round trip, then overwrite with content of another length.
    let first = random_bytes(1000);
    model.put(store, "basic/object", first.clone()).await;
    assert_eq!(get(store, "basic/object").await, first);
    let second = random_bytes(10);
    model.put(store, "basic/object", second.clone()).await;
    assert_eq!(get(store, "basic/object").await, second);

    // An empty object is an object.
    model.put(store, "basic/empty", Bytes::new()).await;
    assert_eq!(get(store, "basic/empty").await, Bytes::new());
    assert_eq!(list(store, "basic/").await, model.list("basic/"));

    // A large object comes back byte for byte and lists its full size.
    let large = random_bytes(LARGE_OBJECT_SIZE);
    model.put(store, "large/object", large.clone()).await;
    assert!(
        get(store, "large/object").await == large,
        "the large object changed"
    );
    assert_eq!(list(store, "large/").await, model.list("large/"));

    // Missing keys, including under a directory that does not exist.
    assert_not_found(store, "basic/missing").await;
    assert_not_found(store, "no/such/dir/object").await;

    // Nested directories.
    let deep = random_bytes(77);
    model
        .put(store, "deep/1/2/3/4/5/object", deep.clone())
        .await;
    assert_eq!(get(store, "deep/1/2/3/4/5/object").await, deep);

    check_listing(store, &mut model).await;
    check_delete(store, &mut model).await;
    check_concurrent_puts(store, &mut model).await;
    check_invalid_keys(store).await;

    // Nothing but what was written: no temp file, no probe object.
    store
        .check_writable()
        .await
        .expect("check_writable on a full store");
    let everything = list(store, "").await;
    assert_eq!(keys(&everything), keys(&model.list("")));
    assert_eq!(everything, model.list(""));
    for (key, data) in &model.objects {
        assert!(get(store, key).await == data, "{key} changed");
    }
}

/// Sorting, and prefixes that are not whole path components.
async fn check_listing(store: &dyn Store, model: &mut Model) {
    // Written out of order, so that sorting is the store's doing.
    for key in [
        "list/b",
        "list/a/c",
        "list/ab",
        "list/a/bc/d",
        "list/a/b/c",
        "list/a/b1",
        "list/0",
    ] {
        model.put(store, key, random_bytes(key.len())).await;
    }
    let all = list(store, "list/").await;
    assert_eq!(
        keys(&all),
        [
            "list/0",
            "list/a/b/c",
            "list/a/b1",
            "list/a/bc/d",
            "list/a/c",
            "list/ab",
            "list/b"
        ]
    );
    assert_eq!(all, model.list("list/"));
    // "list/a/b" is no directory, yet matches "list/a/b1" and "list/a/bc/d".
    assert_eq!(
        keys(&list(store, "list/a/b").await),
        ["list/a/b/c", "list/a/b1", "list/a/bc/d"]
    );
    assert_eq!(
        keys(&list(store, "list/a").await),
        [
            "list/a/b/c",
            "list/a/b1",
            "list/a/bc/d",
            "list/a/c",
            "list/ab"
        ]
    );
    assert_eq!(
        keys(&list(store, "list/a/").await),
        ["list/a/b/c", "list/a/b1", "list/a/bc/d", "list/a/c"]
    );
    assert_eq!(keys(&list(store, "list/a/b/c").await), ["list/a/b/c"]);
    assert_eq!(list(store, "list/zzz").await, []);
    assert_eq!(list(store, "list/zzz/").await, []);
    assert_eq!(list(store, "nothing-here/").await, []);
    assert_eq!(list(store, "").await, model.list(""));
}

/// Deleting twice, and deleting what never was, both succeed.
async fn check_delete(store: &dyn Store, model: &mut Model) {
    model.put(store, "delete/me", random_bytes(5)).await;
    model.delete(store, "delete/me").await;
    assert_not_found(store, "delete/me").await;
    model.delete(store, "delete/me").await;
    model.delete(store, "never/written").await;
    assert_eq!(list(store, "delete/").await, []);
}

/// Puts of different keys at once, all racing to create the same new directory.
async fn check_concurrent_puts(store: &dyn Store, model: &mut Model) {
    let data: Vec<Bytes> = (0..8).map(|i| random_bytes(1000 + i)).collect();
    let key = |i: usize| format!("concurrent/new/dir/object-{i}");
    let put = |i: usize| {
        let (key, data) = (key(i), data[i].clone());
        async move { store.put(&key, data).await }
    };
    let results = tokio::join!(
        put(0),
        put(1),
        put(2),
        put(3),
        put(4),
        put(5),
        put(6),
        put(7)
    );
    for (i, result) in [
        results.0, results.1, results.2, results.3, results.4, results.5, results.6, results.7,
    ]
    .into_iter()
    .enumerate()
    {
        result.unwrap_or_else(|e| panic!("concurrent put {i}: {e}"));
        model.objects.insert(key(i), data[i].clone());
    }
    assert_eq!(list(store, "concurrent/").await, model.list("concurrent/"));
    for (i, expected) in data.iter().enumerate() {
        assert_eq!(&get(store, &key(i)).await, expected);
    }
}

/// Keys that could escape the root or hide among temp files are refused alike
/// by every backend.
async fn check_invalid_keys(store: &dyn Store) {
    for key in ["../escape", "/absolute", "a//b", "a/./b", "a/.tmp-x", ""] {
        match store.put(key, Bytes::from_static(b"x")).await {
            Err(StoreError::InvalidKey { key: reported, .. }) => assert_eq!(reported, key),
            other => panic!("put {key:?}: expected InvalidKey, got {other:?}"),
        }
        assert!(matches!(
            store.get(key).await,
            Err(StoreError::InvalidKey { .. })
        ));
    }
}
