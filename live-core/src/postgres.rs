//! A private Postgres cluster started from the installed server binaries (`initdb`,
//! `postgres`), with `wal_level=logical`, on a free port of 127.0.0.1: the test clusters, and
//! the todo app's database when no `DATABASE_URL` is given.
//!
//! It trusts nobody on TCP: the `postgres` user has a random password (kept in the cluster's
//! directory, readable only by its owner) and TCP connections authenticate with SCRAM; the
//! unix socket lives in a directory only the server's user can enter. Another local user can
//! therefore not connect as superuser (and run `COPY … FROM PROGRAM`).
//!
//! Postgres refuses to run as root; when the process is root, the cluster runs as the
//! `postgres` user (its data directory is handed to that user).

use std::ffi::CString;
use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why a cluster could not be set up.
///
/// ```no_run
/// use live_core::postgres::{ClusterError, LocalPostgres};
///
/// match LocalPostgres::temporary() {
///     Ok(pg) => println!("Postgres at {}", pg.url("postgres")),
///     Err(ClusterError::MissingBinary(bin)) => eprintln!("install PostgreSQL's server ({bin} is missing)"),
///     Err(e) => eprintln!("no Postgres: {e}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A server binary is missing.
    #[error(
        "the PostgreSQL server binary {0:?} was not found; install PostgreSQL's server package \
         (Debian: `apt-get install postgresql`) or put its bin directory on PATH"
    )]
    MissingBinary(String),
    /// A command failed.
    #[error("{what} failed: {detail}")]
    Command {
        /// What was run.
        what: String,
        /// Its output.
        detail: String,
    },
    /// The server did not come up in time.
    #[error("postgres did not become ready in time; see {0}")]
    NotReady(PathBuf),
    /// File system trouble.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A private Postgres server.
///
/// ```no_run
/// use live_core::postgres::LocalPostgres;
/// let pg = LocalPostgres::temporary()?;          // removed on drop
/// println!("{}", pg.url("postgres"));  // postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres
/// # Ok::<(), live_core::postgres::ClusterError>(())
/// ```
#[derive(Debug)]
pub struct LocalPostgres {
    data: PathBuf,
    base: PathBuf,
    port: u16,
    password: String,
    set_password: bool,
    child: Option<Child>,
    remove_on_drop: bool,
    durable: bool,
    user: Option<(u32, u32)>,
}

fn find_binary(name: &str) -> Result<PathBuf, ClusterError> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    versions.sort();
    for v in versions.iter().rev() {
        let p = v.join("bin").join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(ClusterError::MissingBinary(name.to_string()))
}

/// The uid/gid of the `postgres` user, when running as root.
fn postgres_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = CString::new("postgres").ok()?;
    // SAFETY: getpwnam takes a NUL-terminated string and returns a pointer to static storage
    // (or null), which is read at once, before any other call could overwrite it.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: pw is non-null and points to a valid passwd struct.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Some((uid, gid))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    if path.is_dir() {
        for e in fs::read_dir(path)? {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Writes a file only its owner (the server's user) can read.
fn write_private(path: &Path, text: &str, user: Option<(u32, u32)>) -> io::Result<()> {
    fs::write(path, text)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
    }
    Ok(())
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn command(bin: &Path, user: Option<(u32, u32)>) -> Command {
    let mut c = Command::new(bin);
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c.env_remove("PGDATA");
    c
}

impl LocalPostgres {
    /// Creates and starts a cluster in a fresh temporary directory, removed on drop.
    /// `fsync` is off: for tests.
    pub fn temporary() -> Result<Self, ClusterError> {
        let nonce: String = crate::token::random_bytes(4)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let base = std::env::temp_dir().join(format!("live-pg-{}-{nonce}", std::process::id()));
        let mut pg = Self::prepare(base, false)?;
        pg.remove_on_drop = true;
        pg.start()?;
        Ok(pg)
    }

    /// Starts the cluster kept in `dir` (created with `initdb` on first use), durable
    /// (`fsync` on). The data stays between runs.
    pub fn persistent(dir: impl AsRef<Path>) -> Result<Self, ClusterError> {
        let mut pg = Self::prepare(dir.as_ref().to_path_buf(), true)?;
        pg.start()?;
        Ok(pg)
    }

    fn prepare(base: PathBuf, durable: bool) -> Result<Self, ClusterError> {
        let user = postgres_user();
        fs::create_dir_all(&base)?;
        let base = base.canonicalize()?;
        let data = base.join("data");
        if let Some((uid, gid)) = user {
            chown_tree(&base, uid, gid)?;
        }
        // The superuser's password, made once per cluster; only the owner can read it.
        let pw_file = base.join("password");
        let fresh = !data.join("PG_VERSION").exists();
        let mut set_password = false;
        let password = match fs::read_to_string(&pw_file) {
            Ok(p) if !p.trim().is_empty() && !fresh => p.trim().to_string(),
            _ => {
                // A cluster made before passwords were used gets one at its next start.
                set_password = !fresh;
                let p: String = crate::token::random_bytes(24)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                write_private(&pw_file, &p, user)?;
                p
            }
        };
        if fresh {
            let initdb = find_binary("initdb")?;
            let out = command(&initdb, user)
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ])
                .arg(format!("--pwfile={}", pw_file.display()))
                .arg("--no-instructions")
                .stdin(Stdio::null())
                .output()?;
            if !out.status.success() {
                return Err(ClusterError::Command {
                    what: "initdb".into(),
                    detail: String::from_utf8_lossy(&out.stderr).into_owned(),
                });
            }
        }
        // Every start uses this file: TCP needs the password; the unix socket (in a 0700
        // directory) is for the cluster's own user.
        let hba = base.join("pg_hba.conf");
        write_private(
            &hba,
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n",
            user,
        )?;
        Ok(LocalPostgres {
            data,
            base,
            port: 0,
            password,
            set_password,
            child: None,
            remove_on_drop: false,
            durable,
            user,
        })
    }

    /// A connection URL for database `db` (with the superuser's password).
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{db}",
            self.password, self.port
        )
    }

    /// The superuser's password (for `PGPASSWORD`).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A `psql` command line for database `db`, ready to paste.
    pub fn psql_command(&self, db: &str) -> String {
        format!("psql '{}'", self.url(db))
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Whether the server process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Starts the server (on a new free port the first time, the same port after a stop).
    pub fn start(&mut self) -> Result<(), ClusterError> {
        if self.is_running() {
            return Ok(());
        }
        self.stop_stale()?;
        let postgres = find_binary("postgres")?;
        if self.port == 0 {
            self.port = free_port()?;
        }
        let sock = self.base.join("sock");
        fs::create_dir_all(&sock)?;
        fs::set_permissions(&sock, fs::Permissions::from_mode(0o700))?;
        if let Some((uid, gid)) = self.user {
            std::os::unix::fs::chown(&sock, Some(uid), Some(gid))?;
        }
        let log_path = self.base.join("postgres.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        if let Some((uid, gid)) = self.user {
            std::os::unix::fs::chown(&log_path, Some(uid), Some(gid))?;
        }
        let mut cmd = command(&postgres, self.user);
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(&sock)
            .arg("-c")
            .arg(format!(
                "hba_file={}",
                self.base.join("pg_hba.conf").display()
            ))
            .args([
                "-c",
                "unix_socket_permissions=0700",
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "wal_level=logical",
                "-c",
                "max_replication_slots=32",
                "-c",
                "max_wal_senders=32",
                "-c",
                "max_connections=300",
                "-c",
                "synchronous_commit=on",
                "-c",
                "shared_buffers=64MB",
            ]);
        if !self.durable {
            cmd.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        }
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        self.child = Some(cmd.spawn()?);
        self.wait_ready(&log_path)?;
        if self.set_password {
            // Through the unix socket (trusted: only the server's user can enter its
            // directory), give the superuser the password TCP connections now need.
            let psql = find_binary("psql")?;
            let out = command(&psql, self.user)
                .arg("-h")
                .arg(&sock)
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ])
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c"])
                .arg(format!("ALTER ROLE postgres PASSWORD '{}'", self.password))
                .stdin(Stdio::null())
                .output()?;
            if !out.status.success() {
                return Err(ClusterError::Command {
                    what: "psql (setting the password)".into(),
                    detail: String::from_utf8_lossy(&out.stderr).into_owned(),
                });
            }
            self.set_password = false;
        }
        Ok(())
    }

    fn wait_ready(&mut self, log: &Path) -> Result<(), ClusterError> {
        let isready = find_binary("pg_isready").ok();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if !self.is_running() {
                return Err(ClusterError::NotReady(log.to_path_buf()));
            }
            let ready = match &isready {
                Some(bin) => Command::new(bin)
                    .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-p"])
                    .arg(self.port.to_string())
                    .stdin(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false),
                None => std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
            };
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(ClusterError::NotReady(log.to_path_buf()))
    }

    /// A server left running by an earlier process (killed before it could stop it) holds
    /// the data directory: stop it.
    fn stop_stale(&self) -> Result<(), ClusterError> {
        let pid_file = self.data.join("postmaster.pid");
        let Ok(text) = fs::read_to_string(&pid_file) else {
            return Ok(());
        };
        let Some(pid) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
        else {
            return Ok(());
        };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        if pid <= 0 || unsafe { libc::kill(pid, 0) } != 0 {
            return Ok(());
        }
        tracing::info!(pid, "stopping a postgres left running by an earlier run");
        // SAFETY: pid is a positive process id read from postmaster.pid.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let start = Instant::now();
        // SAFETY: as above.
        while unsafe { libc::kill(pid, 0) } == 0 && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Stops the server (fast shutdown: connections are cut, committed data kept).
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if let Ok(Some(_)) = child.try_wait() {
            return Ok(());
        }
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: pid is our child's id; SIGINT asks postgres for a fast shutdown.
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        let start = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if start.elapsed() < Duration::from_secs(30) => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(());
                }
            }
        }
    }

    /// Stops and starts the server on the same port (a Postgres restart).
    pub fn restart(&mut self) -> Result<(), ClusterError> {
        self.stop()?;
        self.start()
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        let _ = self.stop();
        if self.remove_on_drop {
            let _ = fs::remove_dir_all(&self.base);
        }
    }
}
