//! What running a database server on this machine needs from the OS, whichever kind:
//! when logship runs as root, the server's files belong to the server's own OS user; and
//! a free port to listen on.

use std::path::Path;

use anyhow::{Context, anyhow};
use tokio::process::Command;

/// Whether this process runs as root (then server tools run as the server's OS user).
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Gives `dir` and everything in it to the OS user `user`, when logship runs as root.
pub async fn give_to_os_user(dir: &Path, user: &str) -> anyhow::Result<()> {
    if !is_root() {
        return Ok(());
    }
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:{user}"))
        .arg(dir)
        .status()
        .await
        .context("cannot run chown")?;
    if !status.success() {
        return Err(anyhow!(
            "cannot give {} to the {user} OS user (create that user, or run logship as a non-root user)",
            dir.display()
        ));
    }
    Ok(())
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}
