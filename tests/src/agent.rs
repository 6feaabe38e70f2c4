//! Runs the `logship` binary: the daemon as a child process that tests can
//! SIGTERM or `kill -9`, and one-shot commands.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::{free_port, logship_bin};

/// A `logship run` process; killed on drop.
pub struct Agent {
    child: Option<Child>,
    metrics_port: u16,
    log: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    starts: u32,
}

impl Agent {
    /// Starts `logship run` with `args` (e.g. `--postgres URL --store URL`) and
    /// extra environment; its stderr goes to `log_dir/agent.log`.
    pub fn start(args: &[&str], env: &[(String, String)], log_dir: &Path) -> Agent {
        let mut agent = Agent {
            child: None,
            metrics_port: free_port(),
            log: log_dir.join("agent.log"),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env.to_vec(),
            starts: 0,
        };
        agent.spawn();
        agent
    }

    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open agent log");
        let mut command = Command::new(logship_bin());
        command
            .args(&self.args)
            .arg("run")
            .env(
                "LOGSHIP_METRICS_LISTEN",
                format!("127.0.0.1:{}", self.metrics_port),
            )
            .env("LOGSHIP_LOG", "info,logship=debug")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(command.spawn().expect("spawn logship run"));
        self.starts += 1;
    }

    /// Starts the same command again after a kill or a stop.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the agent is still running");
        self.spawn();
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 the agent");
            child.wait().expect("reap the agent");
        }
    }

    /// SIGTERM, then waits for the exit; returns its status and how long it took.
    pub fn sigterm(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("the agent is running");
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("send SIGTERM");
        assert!(status.success());
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait for the agent") {
                return (status, started.elapsed());
            }
            assert!(
                Instant::now() < deadline,
                "the agent ignored SIGTERM for 30 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET path` on the agent's metrics listener: the status code and the body.
    pub fn http_get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port))
            .expect("connect to the metrics listener");
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .expect("send the request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .expect("read the response");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("an HTTP status line");
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// Waits until `/readyz` says every source is streaming, so that what a test writes
    /// next is streamed rather than found on the server at start. Fails after 60 s.
    pub fn wait_streaming(&mut self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let ready = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).is_ok()
                && self.http_get("/readyz").0 == 200;
            if ready {
                return;
            }
            assert!(
                self.is_running() && std::time::Instant::now() < deadline,
                "the agent did not start streaming within 60 s; its log:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Whether the process is still running (it exits by itself only on errors).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("poll the agent").is_none(),
            None => false,
        }
    }

    /// Everything the agent logged so far, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `logship <args>` to completion.
pub fn logship(args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(logship_bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("LOGSHIP_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run logship")
}

/// Runs `logship <args>` like [`logship`], but kills it and fails the test when it has not
/// exited within `timeout`: a command that must fail at once may not hang the suite.
pub fn logship_within(args: &[&str], env: &[(String, String)], timeout: Duration) -> Output {
    let mut child = Command::new(logship_bin())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("LOGSHIP_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run logship");
    // Read both pipes meanwhile, so that a chatty child never blocks on a full pipe.
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for logship") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
            panic!("logship {args:?} did not exit within {timeout:?}; its stderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// The last line a failed command printed on stderr.
pub fn last_stderr_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}
