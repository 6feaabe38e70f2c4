//! Small helpers shared by every server and scenario.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A free TCP port on 127.0.0.1: bind port 0 and read the port back.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// The `logship` binary of this workspace, built first if a `cargo test -p
/// logship-tests` run did not build it (`cargo test --workspace` does).
pub fn logship_bin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace.join("target"));
            let release = !cfg!(debug_assertions);
            let bin = target
                .join(if release { "release" } else { "debug" })
                .join("logship");
            let mut build = std::process::Command::new(env!("CARGO"));
            build
                .args(["build", "--quiet", "-p", "logship", "--bin", "logship"])
                .current_dir(&workspace);
            if release {
                build.arg("--release");
            }
            let status = build.status().expect("run cargo build -p logship");
            assert!(status.success(), "cargo build -p logship failed");
            assert!(
                bin.exists(),
                "{} is missing after cargo build",
                bin.display()
            );
            bin
        })
        .clone()
}

/// A temp dir that the `postgres` OS user may write into (PostgreSQL refuses to run as root).
pub fn temp_dir(label: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("logship-{label}-"))
        .tempdir()
        .expect("create temp dir");
    if is_root() {
        let status = std::process::Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path())
            .status()
            .expect("run chown");
        assert!(status.success(), "chown postgres {}", dir.path().display());
    }
    dir
}

/// Whether this process runs as root, in which case servers run as their own OS users.
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
