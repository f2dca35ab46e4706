//! `cargo xtask db up|down`: throwaway PostgreSQL and MariaDB servers for racelab's database backends.

use std::path::PathBuf;
use std::time::Duration;

use xtask::db_servers::{self, Kind};
use xtask::signals;

pub const USAGE: &str =
    "usage: cargo xtask db up [--root DIR] [--only postgres,mariadb] [--env] [--hold]
       cargo xtask db down [--root DIR]

db up starts PostgreSQL (initdb + pg_ctl) and MariaDB (mariadb-install-db + mariadbd) from
Debian's packages (`apt-get install -y postgresql mariadb-server`), each under DIR (default: a
fresh racelab-db-XXXXXX in $TMPDIR if set, else in /dev/shm when it is a roomy tmpfs: DDL on
a disk is 50x slower) on a private port on 127.0.0.1 and a private unix socket, and
prints their URLs. Every server is logged in DIR/state.json before it starts; `db down` stops
what the log records and deletes DIR. Ctrl-C during `up` stops what was started.

  --env     print `export RACELAB_POSTGRES_URL=...` lines for `eval \"$(cargo xtask db up --env)\"`
  --hold    keep the servers until Ctrl-C/SIGTERM, then stop them
  --root    db down: the root `up` printed (default: $RACELAB_DB_ROOT)

exit codes: 0 every server is up (or down); 3 a server could not start (the others are up and
listed) or could not be stopped; 2 bad usage; 130/143 interrupted.
";

/// Runs `db <args>` and returns the exit code.
pub fn run(args: &[String]) -> u8 {
    match args.first().map(String::as_str) {
        Some("up") => up(&args[1..]),
        Some("down") => down(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            0
        }
        _ => {
            eprintln!("error: db needs a command: up or down\n\n{USAGE}");
            2
        }
    }
}

fn up(args: &[String]) -> u8 {
    let (mut root, mut kinds, mut env, mut hold) = (None, Kind::ALL.to_vec(), false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--root" => match it.next() {
                Some(r) => root = Some(PathBuf::from(r)),
                None => return bad("--root needs a directory"),
            },
            "--only" => match it
                .next()
                .map(|l| l.split(',').map(Kind::parse).collect::<Option<Vec<_>>>())
            {
                Some(Some(k)) => kinds = k,
                _ => return bad("--only needs a list of postgres,mariadb"),
            },
            "--env" => env = true,
            "--hold" => hold = true,
            other => return bad(&format!("unknown option `{other}`")),
        }
    }
    if let Err(e) = signals::install() {
        eprintln!("error: {e}");
        return 3;
    }
    let servers = match db_servers::up(root, &kinds) {
        Ok(s) => s,
        Err(why) => {
            eprintln!("error: {why}");
            return signals::pending().map_or(3, signals::exit_code);
        }
    };
    let mut failed = false;
    for e in servers.entries() {
        match (&e.url, &e.skipped) {
            (Some(url), _) if env => println!("export {}='{}'", e.kind.url_var(), url),
            (Some(url), _) => println!(
                "{:<9} up   {url}   ({})",
                e.kind.name(),
                e.version.as_deref().unwrap_or("?")
            ),
            (None, Some(why)) => {
                failed = true;
                eprintln!("{:<9} could not start: {why}", e.kind.name());
            }
            (None, None) => {}
        }
    }
    if env {
        println!("export RACELAB_DB_ROOT='{}'", servers.root().display());
    } else {
        eprintln!(
            "stop them with: cargo xtask db down --root {}",
            servers.root().display()
        );
    }
    if hold {
        while signals::pending().is_none() {
            std::thread::sleep(Duration::from_millis(100));
        }
        let sig = signals::pending().unwrap_or(15);
        return match servers.down() {
            Ok(()) => signals::exit_code(sig),
            Err(e) => {
                eprintln!("error: {e}");
                3
            }
        };
    }
    servers.keep();
    if failed {
        3
    } else {
        0
    }
}

fn down(args: &[String]) -> u8 {
    let root = match args {
        [flag, r] if flag == "--root" => PathBuf::from(r),
        [] => match std::env::var_os("RACELAB_DB_ROOT") {
            Some(r) => PathBuf::from(r),
            None => {
                return bad("db down needs --root DIR (what `db up` printed), or $RACELAB_DB_ROOT")
            }
        },
        _ => return bad("db down takes only --root DIR"),
    };
    match db_servers::down(&root) {
        Ok(()) => {
            eprintln!(
                "stopped the servers under {} and removed it",
                root.display()
            );
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            3
        }
    }
}

fn bad(msg: &str) -> u8 {
    eprintln!("error: {msg}\n\n{USAGE}");
    2
}
