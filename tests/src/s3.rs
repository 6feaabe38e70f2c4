//! A real S3 per test: s3s-fs serving a temp dir on a free loopback port, with
//! SigV4 checking on, killed when the handle drops.
//!
//! s3s-fs maps each bucket to a directory under its root, so the harness
//! creates the bucket with `mkdir` and tests can look at the stored files.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use logship::store::s3::S3Options;
use tempfile::TempDir;

use crate::util::{free_port, temp_dir};

const ACCESS_KEY: &str = "logship-test-ak";
const SECRET_KEY: &str = "logship-test-sk";
const BUCKET: &str = "logship-test";
const REGION: &str = "us-east-1";
/// The threshold in [`S3Server::options`]: low enough that tests exercise multipart.
pub const TEST_MULTIPART_THRESHOLD: usize = 8 * 1024 * 1024;
/// The part size in [`S3Server::options`]: S3's minimum, for the most parts.
pub const TEST_PART_SIZE: usize = 5 * 1024 * 1024;

/// A running s3s-fs with one empty bucket; killed on drop.
pub struct S3Server {
    port: u16,
    child: Child,
    root: PathBuf,
    dir: TempDir,
}

impl S3Server {
    /// Starts s3s-fs and waits until it accepts connections.
    pub fn start() -> S3Server {
        let dir = temp_dir("s3");
        let root = dir.path().join("root");
        fs::create_dir_all(root.join(BUCKET)).expect("create the bucket directory");
        let port = free_port();
        let log = fs::File::create(dir.path().join("s3s-fs.log")).expect("create the s3s-fs log");
        let child = Command::new(s3s_fs_bin())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn s3s-fs");
        let mut server = S3Server {
            port,
            child,
            root,
            dir,
        };
        server.wait_until_listening();
        server
    }

    fn wait_until_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(status) = self.child.try_wait().expect("poll s3s-fs") {
                panic!(
                    "s3s-fs exited with {status} before listening:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "s3s-fs did not listen on port {} within 20s:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What s3s-fs printed so far, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("s3s-fs.log")).unwrap_or_default()
    }

    /// The endpoint URL, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The access key id s3s-fs accepts.
    pub fn access_key(&self) -> &str {
        ACCESS_KEY
    }

    /// The secret key s3s-fs checks signatures with.
    pub fn secret_key(&self) -> &str {
        SECRET_KEY
    }

    /// The bucket created at start.
    pub fn bucket(&self) -> &str {
        BUCKET
    }

    /// The directory s3s-fs serves; bucket `b` is the directory `b` in it.
    pub fn root_dir(&self) -> &Path {
        &self.root
    }

    /// Options for an [`logship::store::s3::S3Store`] on this server under
    /// `prefix`, with a multipart threshold of 8 MiB and 5 MiB parts.
    pub fn options(&self, prefix: &str) -> S3Options {
        S3Options {
            bucket: BUCKET.to_owned(),
            prefix: prefix.to_owned(),
            endpoint: Some(self.endpoint()),
            region: Some(REGION.to_owned()),
            path_style: true,
            credentials: Some((ACCESS_KEY.to_owned(), SECRET_KEY.to_owned())),
            multipart_threshold: TEST_MULTIPART_THRESHOLD,
            part_size: TEST_PART_SIZE,
        }
    }

    /// Environment for a child `logship` process to reach this server through
    /// the standard AWS chain; the metadata service is switched off so that a
    /// test never reaches for the network.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// The store URL `s3://<bucket>/<prefix>` (`s3://<bucket>` for an empty prefix).
    pub fn store_url(&self, prefix: &str) -> String {
        if prefix.is_empty() {
            format!("s3://{BUCKET}")
        } else {
            format!("s3://{BUCKET}/{prefix}")
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// s3s-fs from PATH, else from cargo's bin directory.
fn s3s_fs_bin() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>());
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    on_path
        .chain(cargo_home.map(|home| home.join("bin")))
        .map(|dir| dir.join("s3s-fs"))
        .find(|bin| bin.is_file())
        .unwrap_or_else(|| {
            panic!(
                "s3s-fs is not installed: run `cargo install s3s-fs --version 0.14.1 --features binary --locked`"
            )
        })
}
