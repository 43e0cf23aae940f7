//! `cargo run -p todo` under a process manager: SIGTERM (what systemd, containers and
//! orchestrators send) stops the app like Ctrl-C — it stops accepting, finishes, and stops its
//! private Postgres, which must not be left running as an orphan holding the data directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn sigterm_stops_the_app_and_its_private_postgres() {
    let dir = std::env::temp_dir().join(format!("todo-sigterm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_todo"))
        .env_remove("DATABASE_URL")
        .env("TODO_DATA_DIR", &dir)
        .env("PORT", port.to_string())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the todo app");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut printed = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the app did not start in time");
        printed.push(line.clone());
        if line.contains("running at") {
            break;
        }
    }
    // It works, and it said how to reach its database.
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut page = String::new();
    s.read_to_string(&mut page).expect("read");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let psql_hint = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    let psql_cmd = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    assert!(
        psql_cmd
            .trim_start()
            .starts_with("psql 'postgres://postgres:"),
        "{psql_hint} / {psql_cmd}"
    );
    let pid_file = dir.join("data").join("postmaster.pid");
    let pg_pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("postmaster.pid")
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("a pid");
    assert!(alive(pg_pid));

    let app_pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(app_pid, libc::SIGTERM) };
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the app did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let t = Instant::now();
    while alive(pg_pid) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(pg_pid), "the private Postgres was left running");
    assert!(!pid_file.exists(), "postmaster.pid left behind");
    let _ = std::fs::remove_dir_all(&dir);
}
