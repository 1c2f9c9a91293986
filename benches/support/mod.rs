//! What the benches share: the release server binary as a child process, reading a
//! process's CPU time and memory from /proc, percentiles, and the machine description.

#![allow(dead_code, reason = "each bench uses a part of it")]

pub mod embedded;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The server binary on a free loopback port, killed when dropped.
pub struct Server {
    process: Child,
    pub addr: SocketAddr,
    pub pid: u32,
}

impl Server {
    /// Starts the binary on `data_dir` with durable writes and `env` added, and waits until
    /// it prints the address it listens on.
    pub async fn start(data_dir: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_under(&[], data_dir, env).await
    }

    /// Like [`Server::start`], run by `wrapper` (a program and its arguments, such as
    /// valgrind) if it is not empty.
    pub async fn start_under(wrapper: &[String], data_dir: &Path, env: &[(&str, &str)]) -> Server {
        let server = env!("CARGO_BIN_EXE_outbox");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(server);
                command
            }
            None => Command::new(server),
        };
        let mut process = command
            .env("DATA_DIR", data_dir)
            .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
            .env("SQLITE_SYNCHRONOUS", "full")
            .env("RUST_LOG", "error")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("server starts");
        let pid = process.id().expect("server pid");
        let mut lines = BufReader::new(process.stdout.take().expect("stdout")).lines();
        let line = lines.next_line().await.unwrap().expect("address line");
        let addr = line
            .trim_start_matches("listening on http://")
            .parse()
            .expect("address");
        Server { process, addr, pid }
    }

    /// Asks the server to shut down (SIGTERM) and waits until it has exited.
    pub async fn stop(mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM to {}", self.pid);
        let exit = self.process.wait().await.expect("the server exits");
        assert!(exit.success(), "the server stopped cleanly: {exit}");
    }
}

/// A tansu broker (`TANSU`, which `make bench` installs) with in-memory storage on a free
/// loopback port, killed when dropped.
pub struct Broker {
    _process: Child,
    /// `host:port` for `bootstrap.servers`.
    pub address: String,
}

impl Broker {
    /// Starts the broker and waits until it listens.
    pub async fn start() -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let address = format!("127.0.0.1:{port}");
        let url = format!("tcp://{address}");
        let program = std::env::var("TANSU").unwrap_or_else(|_| "tansu".into());
        let process = Command::new(&program)
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{program} runs (`make bench` installs tansu): {e}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(&address).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "tansu never listened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Broker {
            _process: process,
            address,
        }
    }
}

/// CPU seconds (user + system) used so far by process `pid`.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of process `pid` in MiB (VmRSS).
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The `p` quantile (0–1) of `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// "N cores, CPU model" of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

/// The value after `flag` on the command line, parsed, or `default`.
pub fn arg<T: std::str::FromStr>(flag: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|pair| pair[0] == flag)
        .map_or(default, |pair| {
            pair[1]
                .parse()
                .unwrap_or_else(|_| panic!("{flag} takes a value"))
        })
}
