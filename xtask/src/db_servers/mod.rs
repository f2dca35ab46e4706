//! Throwaway database servers for racelab's real-database backends: PostgreSQL and MariaDB from
//! Debian's packages, each in its own directory under one temp root, on a private port and unix
//! socket, torn down after.
//!
//! Every server is recorded in `ROOT/state.json` (an intent log) *before* it is started, so
//! [`down`] can stop exactly what exists even after a crash or a Ctrl-C: it stops each recorded
//! server by its pid file (SIGTERM, then SIGKILL), and removes the root. As root, PostgreSQL runs
//! as the `postgres` user (initdb refuses root) and MariaDB as `mysql`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::signals;

/// A server kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Postgres,
    Mariadb,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Postgres, Kind::Mariadb];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::Mariadb => "mariadb",
        }
    }
    /// The environment variable racelab reads the URL from.
    pub fn url_var(self) -> &'static str {
        match self {
            Kind::Postgres => "RACELAB_POSTGRES_URL",
            Kind::Mariadb => "RACELAB_MARIADB_URL",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "postgres" | "postgresql" => Some(Kind::Postgres),
            "mariadb" | "mysql" => Some(Kind::Mariadb),
            _ => None,
        }
    }
}

/// One server as recorded in the intent log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    /// Its directory under the root (data, socket, log, pid file).
    pub dir: PathBuf,
    pub port: u16,
    pub pid_file: PathBuf,
    /// Set once it accepts connections.
    pub url: Option<String>,
    pub version: Option<String>,
    /// Why it is not up, when it could not start.
    pub skipped: Option<String>,
}

/// The intent log: `ROOT/state.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub root: PathBuf,
    pub servers: Vec<Entry>,
}

impl State {
    fn path(root: &Path) -> PathBuf {
        root.join("state.json")
    }
    fn save(&self) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let tmp = self.root.join("state.json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, State::path(&self.root)))
            .map_err(|e| {
                format!(
                    "cannot write the intent log in {}: {e}",
                    self.root.display()
                )
            })
    }
    pub fn load(root: &Path) -> Result<State, String> {
        let text = std::fs::read_to_string(State::path(root))
            .map_err(|e| format!("{}: {e}", State::path(root).display()))?;
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not a db state file: {e}",
                State::path(root).display()
            )
        })
    }
}

/// Servers that are up (or skipped, with the reason); [`Servers::down`] or drop stops them.
pub struct Servers {
    pub state: State,
    down: bool,
}

impl Servers {
    pub fn entries(&self) -> &[Entry] {
        &self.state.servers
    }
    pub fn root(&self) -> &Path {
        &self.state.root
    }
    /// Stops every server and removes the root.
    pub fn down(mut self) -> Result<(), String> {
        self.down = true;
        down(&self.state.root)
    }
    /// Leaves the servers running (for `cargo xtask db up`): `db down --root` stops them.
    pub fn keep(mut self) -> State {
        self.down = true;
        self.state.clone()
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if !self.down {
            let _ = down(&self.state.root);
        }
    }
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free local port: {e}"))
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The directory holding PostgreSQL's server programs (initdb, pg_ctl, postgres).
fn pg_bindir() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .or_else(|| which("initdb").and_then(|p| p.parent().map(Path::to_path_buf)))
}

fn which(prog: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

/// Runs `cmd` (as `user` when we are root), returning what it printed on failure.
fn run_as(user: Option<&str>, prog: &Path, args: &[&str]) -> Result<(), String> {
    let mut cmd = match user {
        Some(u) if is_root() => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(prog);
            c
        }
        _ => Command::new(prog),
    };
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", prog.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{} {}` failed ({}): {}{}",
            prog.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

fn chown(path: &Path, user: &str) -> Result<(), String> {
    if !is_root() {
        return Ok(());
    }
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:"))
        .arg(path)
        .status()
        .map_err(|e| format!("cannot run chown: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("chown -R {user} {} failed; does the `{user}` user exist (it comes with the server's Debian package)?", path.display()))
    }
}

/// Waits until `port` accepts connections, the server process dies, or 60 s pass.
fn wait_ready(
    port: u16,
    pid_alive: &dyn Fn() -> bool,
    what: &str,
    log: &Path,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        if let Some(sig) = signals::pending() {
            return Err(format!("interrupted by {}", signals::name(sig)));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(5) && !pid_alive() {
            return Err(format!(
                "{what} exited while starting; its log {} says: {}",
                log.display(),
                tail(log)
            ));
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "{what} did not accept connections on port {port} within 60s; see {}: {}",
                log.display(),
                tail(log)
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

fn read_pid(pid_file: &Path) -> Option<i32> {
    std::fs::read_to_string(pid_file)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn version_of(prog: &Path) -> Option<String> {
    let out = Command::new(prog).arg("--version").output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn start_postgres(e: &mut Entry) -> Result<(), String> {
    let bin = pg_bindir()
        .ok_or("PostgreSQL's initdb is not installed: `apt-get install -y postgresql`")?;
    let data = e.dir.join("data");
    let sock = e.dir.join("sock");
    std::fs::create_dir_all(&sock)
        .map_err(|err| format!("cannot create {}: {err}", sock.display()))?;
    chown(&e.dir, "postgres")?;
    let user = Some("postgres");
    run_as(
        user,
        &bin.join("initdb"),
        &[
            "-D",
            &data.to_string_lossy(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
    )?;
    let log = e.dir.join("server.log");
    let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c max_prepared_transactions=10", e.port, sock.display());
    run_as(
        user,
        &bin.join("pg_ctl"),
        &[
            "-D",
            &data.to_string_lossy(),
            "-o",
            &opts,
            "-l",
            &log.to_string_lossy(),
            "-w",
            "-t",
            "60",
            "start",
        ],
    )?;
    let pid_file = e.pid_file.clone();
    wait_ready(
        e.port,
        &|| read_pid(&pid_file).is_some_and(alive),
        "postgres",
        &log,
    )?;
    e.version = version_of(&bin.join("postgres"));
    e.url = Some(format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres",
        e.port
    ));
    Ok(())
}

fn start_mariadb(e: &mut Entry) -> Result<(), String> {
    let install = which("mariadb-install-db")
        .or_else(|| which("mysql_install_db"))
        .ok_or(
            "MariaDB's mariadb-install-db is not installed: `apt-get install -y mariadb-server`",
        )?;
    let server = which("mariadbd")
        .or_else(|| Some(PathBuf::from("/usr/sbin/mariadbd")).filter(|p| p.exists()))
        .ok_or("mariadbd is not installed: `apt-get install -y mariadb-server`")?;
    let data = e.dir.join("data");
    std::fs::create_dir_all(&data)
        .map_err(|err| format!("cannot create {}: {err}", data.display()))?;
    chown(&e.dir, "mysql")?;
    let user_arg = if is_root() {
        vec!["--user=mysql".to_string()]
    } else {
        vec![]
    };
    let mut args = vec![
        "--no-defaults".to_string(),
        format!("--datadir={}", data.display()),
        "--skip-test-db".into(),
        "--auth-root-authentication-method=normal".into(),
    ];
    args.extend(user_arg.iter().cloned());
    run_as(
        None,
        &install,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    let log = e.dir.join("server.log");
    let mut args = vec![
        "--no-defaults".to_string(),
        format!("--datadir={}", data.display()),
        format!("--socket={}", e.dir.join("mariadb.sock").display()),
        format!("--port={}", e.port),
        "--bind-address=127.0.0.1".into(),
        format!("--pid-file={}", e.pid_file.display()),
        format!("--log-error={}", log.display()),
        "--skip-grant-tables".into(),
        "--skip-name-resolve".into(),
        "--innodb-flush-log-at-trx-commit=0".into(),
        "--max-connections=300".into(),
    ];
    args.extend(user_arg);
    let mut child = Command::new(&server)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot run {}: {err}", server.display()))?;
    let started = wait_ready(
        e.port,
        &|| read_pid(&e.pid_file).is_some_and(alive),
        "mariadbd",
        &log,
    );
    if started.is_err() {
        let _ = child.kill();
    }
    // The server runs on after this process: reap it in the background when it ends.
    std::thread::spawn(move || child.wait());
    started?;
    e.version = version_of(&server);
    e.url = Some(format!("mysql://root@127.0.0.1:{}/", e.port));
    Ok(())
}

/// Starts the servers of `kinds` under `root` (a new or empty directory; a fresh temp directory
/// when `None`). A server that cannot start is stopped, and listed with the reason; the others
/// still come up. Ctrl-C or SIGTERM during `up` stops everything (see [`signals`]; install first).
/// Where the servers' directories go by default: $TMPDIR when the user set it, else /dev/shm
/// when it is a tmpfs with room to spare. The servers are throwaway, and on a disk every CREATE
/// and DROP TABLE waits for the disk: measured on a busy 2-core machine, a stress run's schema
/// reset (four tables) took 80-300 ms on MariaDB on disk and 2 ms on tmpfs. Locking and
/// isolation are the same on both.
fn default_parent() -> PathBuf {
    const ROOM: u64 = 1 << 30;
    if std::env::var_os("TMPDIR").is_none() {
        let shm = std::path::Path::new("/dev/shm");
        let roomy = nix::sys::statfs::statfs(shm).is_ok_and(|fs| {
            fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC
                && fs.blocks_available().saturating_mul(fs.block_size() as u64) >= ROOM
        });
        if roomy && nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok() {
            return shm.to_path_buf();
        }
    }
    std::env::temp_dir()
}

pub fn up(root: Option<PathBuf>, kinds: &[Kind]) -> Result<Servers, String> {
    let root = match root {
        Some(r) => {
            std::fs::create_dir_all(&r)
                .map_err(|e| format!("cannot create {}: {e}", r.display()))?;
            if std::fs::read_dir(&r)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
            {
                return Err(format!(
                    "{} is not empty; pass a new or empty directory",
                    r.display()
                ));
            }
            r
        }
        None => tempfile::Builder::new()
            .prefix("racelab-db-")
            .tempdir_in(default_parent())
            .map_err(|e| format!("cannot create a temp directory: {e}"))?
            .keep(),
    };
    // The server users must reach their directories below it.
    let _ = std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755));
    let mut servers = Servers {
        state: State {
            root: root.clone(),
            servers: Vec::new(),
        },
        down: false,
    };
    servers.state.save()?;
    for &kind in kinds {
        if let Some(sig) = signals::pending() {
            return Err(format!(
                "interrupted by {}; what was started has been stopped",
                signals::name(sig)
            ));
        }
        let dir = root.join(kind.name());
        let port = free_port()?;
        let pid_file = match kind {
            Kind::Postgres => dir.join("data").join("postmaster.pid"),
            Kind::Mariadb => dir.join("mariadb.pid"),
        };
        servers.state.servers.push(Entry {
            kind,
            dir: dir.clone(),
            port,
            pid_file,
            url: None,
            version: None,
            skipped: None,
        });
        // Logged before anything is created, so a crash from here on is undone by `down`.
        servers.state.save()?;
        let entry = servers.state.servers.last_mut().expect("just pushed");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let r = match kind {
            Kind::Postgres => start_postgres(entry),
            Kind::Mariadb => start_mariadb(entry),
        };
        if let Err(why) = r {
            if signals::pending().is_some() {
                return Err(why);
            }
            stop(entry);
            entry.skipped = Some(why);
        }
        servers.state.save()?;
    }
    Ok(servers)
}

/// Stops one server by its pid file: SIGTERM, up to 20 s, then SIGKILL.
fn stop(e: &Entry) {
    let Some(pid) = read_pid(&e.pid_file) else {
        return;
    };
    let p = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGTERM);
    let start = Instant::now();
    while alive(pid) && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stops every server the intent log in `root` records and removes `root`. Running it twice
/// is fine; a root without a log is only removed if it holds nothing but server directories.
pub fn down(root: &Path) -> Result<(), String> {
    if !root.exists() {
        return Ok(());
    }
    let state = match State::load(root) {
        Ok(s) => s,
        Err(why) => {
            // No log: stop whatever the layout says could be running.
            let guess: Vec<Entry> = Kind::ALL
                .iter()
                .map(|&kind| {
                    let dir = root.join(kind.name());
                    let pid_file = if kind == Kind::Postgres {
                        dir.join("data").join("postmaster.pid")
                    } else {
                        dir.join("mariadb.pid")
                    };
                    Entry {
                        kind,
                        dir,
                        port: 0,
                        pid_file,
                        url: None,
                        version: None,
                        skipped: None,
                    }
                })
                .collect();
            if !guess.iter().any(|e| e.dir.exists()) {
                return Err(format!(
                    "{why}; {} does not look like a `db up` root, left alone",
                    root.display()
                ));
            }
            State {
                root: root.to_path_buf(),
                servers: guess,
            }
        }
    };
    for e in state.servers.iter().rev() {
        stop(e);
    }
    std::fs::remove_dir_all(root).map_err(|e| format!("cannot remove {}: {e}", root.display()))
}
