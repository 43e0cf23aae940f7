//! App nodes as separate processes (so a test can SIGKILL one): the test binary runs itself
//! with `node_process` selected and the node's settings in the environment; that test
//! function runs [`node_main`], which serves the items app on the bus until SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A node process.
pub struct NodeProc {
    child: Option<Child>,
    /// Its HTTP address.
    pub addr: SocketAddr,
    /// Its name in messages.
    pub name: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl NodeProc {
    /// Starts a node of the items app: `entry` is the test function that calls
    /// [`node_main`] (e.g. `"node_process"`).
    pub fn spawn(entry: &str, name: &str, db_url: &str, slot: &str, nats_url: &str) -> NodeProc {
        Self::spawn_with(
            entry,
            name,
            &[
                ("LIVE_NODE_DB", db_url),
                ("LIVE_NODE_SLOT", slot),
                ("LIVE_NODE_NATS", nats_url),
            ],
        )
    }

    /// Starts the test function `entry` of this test binary as a process with `env`; it
    /// prints `LIVE_NODE_READY <addr>` once it serves.
    pub fn spawn_with(entry: &str, name: &str, env: &[(&str, &str)]) -> NodeProc {
        let exe = std::env::current_exe().expect("the test binary");
        let mut child = Command::new(exe)
            .args([
                entry,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("LIVE_NODE_LOG")
                    .unwrap_or_else(|_| "info,sqlx=warn,async_nats=warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a node process");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let log2 = log.clone();
        let tag = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var("LIVE_NODE_ECHO").is_ok() {
                    eprintln!("[{tag}] {line}");
                }
                log2.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest may have written "test node_process ... " on the same line.
                if let Some(i) = line.find("LIVE_NODE_READY ") {
                    let _ = tx.send(line[i + 16..].trim().to_string());
                }
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "node {name} did not start; its log:\n{}",
                log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
            );
        };
        let addr = addr.parse().expect("node address");
        NodeProc {
            child: Some(child),
            addr,
            name: name.to_string(),
            log,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// The lines it logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// SIGKILL: the node dies at once (its TCP connections are reset by the kernel).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child by its pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    /// SIGTERM, and waits (up to 20 s) for the node to stop; returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Its `/live/health` (`None` when it does not answer).
    pub async fn health(&self) -> Option<Value> {
        // A node that is gone does not answer (and `get` would panic on it).
        tokio::net::TcpStream::connect(self.addr).await.ok()?;
        let fetch = crate::get(self.addr, "/live/health");
        let (status, body) = tokio::time::timeout(Duration::from_secs(3), fetch)
            .await
            .ok()?;
        if status != 200 {
            return None;
        }
        serde_json::from_str(body.trim()).ok()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What an app process started by [`NodeProc::spawn_with`] runs in: logs to stderr (its
/// parent reads them) and a two-thread runtime.
pub fn child_runtime() -> tokio::runtime::Runtime {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The body of a node process: when the environment names a node (`LIVE_NODE_DB`), serves
/// the items app on the bus and exits on SIGTERM after a graceful stop. Otherwise returns at
/// once (the function is an ignored test of the binary).
pub fn node_main() {
    let (Ok(db), Ok(slot), Ok(nats)) = (
        std::env::var("LIVE_NODE_DB"),
        std::env::var("LIVE_NODE_SLOT"),
        std::env::var("LIVE_NODE_NATS"),
    ) else {
        return;
    };
    child_runtime().block_on(async move {
        let (addr, live) = match crate::items::start_node(&db, &slot, &nats).await {
            Ok(x) => x,
            Err(e) => {
                eprintln!("node failed to start: {e}");
                std::process::exit(2);
            }
        };
        println!("LIVE_NODE_READY {addr}");
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        term.recv().await;
        eprintln!("SIGTERM: stopping");
        live.shutdown().await;
        std::process::exit(0);
    });
}
