//! Test support for pushlab beyond one process: a real `redis-server`, real `pushlab`
//! processes (the binary this crate builds) and a real nginx, each on a free loopback
//! port, each killed when its handle is dropped.
//!
//! Readiness is an event, never a sleep: Redis says "Ready to accept connections",
//! pushlab prints the URL it listens on. nginx says nothing, so its readiness is a
//! condition polled with a deadline (`/healthz` answers through it).
//!
//! Use from a test file with `mod common;` and `#[path = "common/cluster.rs"] mod cluster;`.
#![allow(dead_code)] // each test file uses a different part of this kit

use std::net::SocketAddr;
use std::ops::{Deref, RangeInclusive};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::common::{PATIENCE, Server, eventually, within};

/// A fresh directory under the system's temp dir, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(what: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("pushlab-{what}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Reads `output` until a line contains `marker` and returns that line; keeps
/// draining the rest in the background so the child never blocks on a full pipe.
async fn wait_for_line(output: impl AsyncRead + Unpin + Send + 'static, marker: &str) -> String {
    let mut lines = BufReader::new(output).lines();
    let line = within(&format!("a line with {marker:?}"), async {
        loop {
            match lines.next_line().await.unwrap() {
                Some(line) if line.contains(marker) => return line,
                Some(_) => continue,
                None => panic!("the process ended before printing {marker:?}"),
            }
        }
    })
    .await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    line
}

/// SIGKILLs a child and reaps it.
async fn kill(child: &mut Child) {
    let _ = child.start_kill();
    let _ = within("a killed process to exit", child.wait()).await;
}

/// A real `redis-server`, with its data in a scratch directory and an append-only
/// file synced on every write, so that a killed Redis comes back with everything it
/// acknowledged (as production Redis behind pushlab should be configured).
pub struct Redis {
    pub port: u16,
    // Fields drop in order: the process goes before its directory.
    child: Option<Child>,
    dir: Scratch,
}

impl Redis {
    pub async fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
            dir: Scratch::new("redis"),
        };
        redis.run().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `N` pushlab processes sharing this Redis, started together.
    pub async fn instances<const N: usize>(&self) -> [Instance; N] {
        let url = self.url();
        let started = futures::future::join_all((0..N).map(|_| Instance::start(&url))).await;
        started
            .try_into()
            .unwrap_or_else(|_| unreachable!("join_all returns one per future"))
    }

    /// SIGKILL: no shutdown save, no goodbye to clients.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child).await;
        }
    }

    /// Starts again on the same port with the same data.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.run().await;
    }

    async fn run(&mut self) {
        let mut child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed (scripts/test.sh installs it)");
        wait_for_line(child.stdout.take().unwrap(), "Ready to accept connections").await;
        self.child = Some(child);
    }
}

/// The flags every pushlab process in these tests gets besides its store: one client
/// IP (the test) publishes bursts, so the per-IP publish rate is off.
const FLAGS: [&str; 4] = ["--addr", "127.0.0.1:0", "--publish-rate", "0"];

/// A real `pushlab` process; derefs to a [`Server`] for the common clients.
pub struct Instance {
    server: Server,
    child: Child,
}

impl Instance {
    /// Starts the binary on a free port with `--store store` and waits until it
    /// listens.
    pub async fn start(store: &str) -> Self {
        Self::start_with(store, &[]).await
    }

    pub async fn start_with(store: &str, flags: &[&str]) -> Self {
        let mut child = pushlab(store, flags)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let line = wait_for_line(child.stdout.take().unwrap(), "pushlab listening on").await;
        let addr: SocketAddr = line
            .rsplit("http://")
            .next()
            .and_then(|addr| addr.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        Self {
            server: Server::at(addr),
            child,
        }
    }

    /// SIGKILL: no graceful shutdown; its clients just lose their connection.
    pub async fn kill(mut self) {
        kill(&mut self.child).await;
    }
}

impl Deref for Instance {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// The `pushlab` binary with the test flags and `--store store`, killed on drop.
pub fn pushlab(store: &str, flags: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pushlab"));
    command
        .args(FLAGS)
        .args(["--store", store])
        .args(flags)
        .env("PUSHLAB_LOG", "warn") // quiet unless a test asks with --log
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs pushlab until it exits by itself; its exit status and standard error.
pub async fn run_to_exit(store: &str) -> (ExitStatus, String) {
    let output = pushlab(store, &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    let output = within("pushlab to exit", output).await.unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A real nginx running `deploy/nginx.conf`, its ports swapped for the test's.
pub struct Nginx {
    server: Server,
    // Fields drop in order: the process goes before its directory.
    _process: Child,
    _dir: Scratch,
}

impl Nginx {
    /// nginx on a free port in front of `upstreams` (the config's two
    /// `127.0.0.1:808x` servers are replaced by these).
    pub async fn start(upstreams: [SocketAddr; 2]) -> Self {
        let dir = Scratch::new("nginx");
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let port = free_port();
        let shipped = include_str!("../../deploy/nginx.conf");
        for expected in [
            "listen 127.0.0.1:8080;",
            "server 127.0.0.1:8081",
            "server 127.0.0.1:8082",
        ] {
            assert!(
                shipped.contains(expected),
                "deploy/nginx.conf no longer has {expected:?}"
            );
        }
        let config = shipped
            .replace(
                "listen 127.0.0.1:8080;",
                &format!("listen 127.0.0.1:{port};"),
            )
            .replace("server 127.0.0.1:8081", &format!("server {}", upstreams[0]))
            .replace("server 127.0.0.1:8082", &format!("server {}", upstreams[1]));
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .args([
                "-g",
                // One process in the foreground: killing it leaves no worker behind.
                "daemon off; master_process off; pid nginx.pid; error_log logs/error.log warn;",
            ])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nginx must be installed (scripts/test.sh installs it)");
        let nginx = Self {
            server: Server::at(SocketAddr::from(([127, 0, 0, 1], port))),
            _process: child,
            _dir: dir,
        };
        eventually("nginx to answer /healthz", || async {
            let answer = nginx.http.get(nginx.url("/healthz")).send().await;
            answer.is_ok_and(|a| a.status() == 200)
        })
        .await;
        nginx
    }
}

impl Deref for Nginx {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Posts `"{prefix}{id}"` for each id, and checks that each gets that id.
pub async fn post_each(server: &Server, ids: RangeInclusive<u64>, prefix: &str) {
    for id in ids {
        let stored = server.post("tester", &format!("{prefix}{id}")).await;
        assert_eq!(stored["id"], id, "{stored}");
    }
}

/// Posts over HTTP, returning the status, the `Retry-After` header and the body.
pub async fn try_post(server: &Server, text: &str) -> (u16, Option<String>, Value) {
    let response = server
        .http
        .post(server.url("/api/messages"))
        .json(&json!({ "author": "tester", "text": text }))
        .timeout(PATIENCE)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap())
}
