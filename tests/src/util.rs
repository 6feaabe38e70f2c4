//! Small helpers shared by every server and scenario.

use std::net::TcpListener;
use std::path::PathBuf;

/// A free TCP port on 127.0.0.1: bind port 0 and read the port back.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// The `logship` binary built by this `cargo test` run.
pub fn logship_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let bin = target.join(profile).join("logship");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        bin.display()
    );
    bin
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
