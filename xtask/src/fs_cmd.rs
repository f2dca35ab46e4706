//! `cargo xtask fs up|down`: the command line over [`xtask::fs_matrix`], with a table for people and `--json` for machines.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use xtask::fs_matrix::{self, Crash, DownOutcome, Entry, Kind, Matrix, Options, Report, Target};
use xtask::signals;

pub const USAGE: &str = "usage: cargo xtask fs up [--root DIR] [--only LIST] [--json] [--hold]
       cargo xtask fs down (--root DIR | --state FILE) [--json]
       cargo xtask fs up --help | fs down --help
";

const UP_HELP: &str = "cargo xtask fs up [--root DIR] [--only LIST] [--json] [--hold]

Brings up racelab's real filesystem matrix, as root: tmpfs; ext4, xfs and btrfs each on its own
sparse loop-device image (256 MiB, 512 MiB, 512 MiB); and overlayfs (its layers on a tmpfs).
Each is mounted at DIR/mnt/<name> with a writable directory DIR/mnt/<name>/racelab for scenarios.
Every action is logged to DIR/state.json before it is performed, so `fs down` can undo any part
of it, even after a crash. Ctrl-C or SIGTERM during `up` tears down what was set up.

options:
  --root DIR    where to put it: a new or empty directory
                (default: a fresh $TMPDIR/racelab-fs-XXXXXX, printed)
  --only LIST   comma-separated subset of tmpfs,ext4,xfs,btrfs,overlay (default: all)
  --json        print the result as JSON on stdout (messages go to stderr)
  --hold        keep the matrix up until Ctrl-C/SIGTERM, then tear it down and exit 130/143;
                without it the matrix stays up for `cargo xtask fs down --root DIR`

A filesystem that cannot come up (its mkfs is not installed, the kernel refuses the mount) is
listed as skipped with the exact command and what it printed; the others still come up.
mkfs.xfs and mkfs.btrfs come from `apt-get install -y xfsprogs btrfs-progs`.

exit codes:
  0    every requested filesystem is up, or partial success: some are up and the others
       are listed as skipped with the reason
  2    bad usage, or a --root that is not new or empty
  3    infrastructure: not root, or none could come up (then nothing is left behind)
  130  interrupted by Ctrl-C (SIGINT), 143 by SIGTERM, 129 by SIGHUP; what was set up is torn down
";

const DOWN_HELP: &str = "cargo xtask fs down (--root DIR | --state FILE) [--json]

Tears down the matrix that `fs up` logged in DIR/state.json (or FILE): unmounts in reverse order
(retrying, then lazily with MNT_DETACH if busy), detaches the loop devices, deletes the images and
the root, and the state file last. Works on the log of a half-finished or crashed `up`, and running
it twice is fine. Given a root without a state file, it still unmounts and detaches anything under it.

exit codes:
  0    torn down, or nothing was there
  2    bad usage, or FILE is not a matrix state file
  3    something could not be undone; it is listed, and the state file is kept so `down` can be rerun
";

/// Runs `fs <args>` and returns the exit code.
pub fn run(args: &[String]) -> u8 {
    match args.first().map(String::as_str) {
        Some("up") => up(&args[1..]),
        Some("down") => down(&args[1..]),
        Some("-h" | "--help" | "help") => {
            print!("{USAGE}\n{UP_HELP}\n{DOWN_HELP}");
            0
        }
        Some(other) => usage_error(&format!("unknown fs command `{other}`")),
        None => usage_error("fs needs a command: up or down"),
    }
}

fn usage_error(msg: &str) -> u8 {
    eprintln!("error: {msg}\n\n{USAGE}");
    2
}

fn value<'a>(
    it: &mut impl Iterator<Item = &'a String>,
    flag: &str,
    example: &str,
) -> Result<&'a String, u8> {
    it.next()
        .ok_or_else(|| usage_error(&format!("{flag} needs a value, e.g. {flag} {example}")))
}

fn up(args: &[String]) -> u8 {
    let mut opts = Options::default();
    let (mut json, mut hold) = (false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{UP_HELP}");
                return 0;
            }
            "--root" => match value(&mut it, "--root", "/tmp/racelab-fs") {
                Ok(v) => opts.root = Some(PathBuf::from(v)),
                Err(code) => return code,
            },
            "--only" => {
                let list = match value(&mut it, "--only", "tmpfs,ext4") {
                    Ok(v) => v,
                    Err(code) => return code,
                };
                let mut only = Vec::new();
                for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match Kind::parse(name) {
                        Some(k) => only.push(k),
                        None => return usage_error(&format!("unknown filesystem `{name}` in --only; choose from tmpfs,ext4,xfs,btrfs,overlay")),
                    }
                }
                opts.only = only;
            }
            "--json" => json = true,
            "--hold" => hold = true,
            // Hidden, for the teardown-after-crash tests: SIGKILL ourselves at intent-log action N,
            // after performing it (`N`) or just before (`N,before`).
            "--crash-at" => {
                let v = match value(&mut it, "--crash-at", "6") {
                    Ok(v) => v,
                    Err(code) => return code,
                };
                let (n, before) = match v.split_once(',') {
                    Some((n, "before")) => (n, true),
                    Some(_) => return usage_error("--crash-at takes N or N,before"),
                    None => (v.as_str(), false),
                };
                match n.parse() {
                    Ok(action) => opts.crash = Some(Crash { action, before }),
                    Err(_) => return usage_error("--crash-at takes an action number"),
                }
            }
            other => return usage_error(&format!("unknown option `{other}` for fs up")),
        }
    }
    let matrix = match Matrix::up(&opts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    };
    print_up(&matrix, json);
    // A signal that came after the last action but before we hand the matrix over still counts.
    let signal = if hold {
        eprintln!("holding the matrix up; Ctrl-C or SIGTERM tears it down");
        loop {
            if let Some(sig) = signals::pending() {
                break Some(sig);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    } else {
        signals::pending()
    };
    let Some(sig) = signal else {
        let (root, _) = matrix.keep();
        eprintln!(
            "the matrix stays up; tear it down with: cargo xtask fs down --root {}",
            root.display()
        );
        return 0;
    };
    eprintln!(
        "{}: tearing down the fs matrix at {}",
        signals::name(sig),
        matrix.root().display()
    );
    let started = Instant::now();
    match matrix.down() {
        Ok(report) => {
            eprintln!(
                "torn down in {:.2}s ({})",
                started.elapsed().as_secs_f64(),
                summary(&report)
            );
            signals::exit_code(sig)
        }
        Err(e) => {
            eprintln!("error: {e}");
            // Interrupted either way; the message says what is left.
            signals::exit_code(sig)
        }
    }
}

fn print_up(m: &Matrix, json: bool) {
    if json {
        let doc = serde_json::json!({
            "root": m.root(),
            "state": m.state_path(),
            "seconds": m.up_seconds(),
            "entries": m.entries(),
        });
        println!("{doc:#}");
        // The tests and scripts read this while we hold; make sure it is out before we wait.
        let _ = std::io::stdout().flush();
        return;
    }
    println!(
        "fs matrix at {}  (state: {}; up in {:.2}s)",
        m.root().display(),
        m.state_path().display(),
        m.up_seconds()
    );
    println!("{}", table(m.entries()));
    let _ = std::io::stdout().flush();
}

fn table(entries: &[Entry]) -> String {
    let up: Vec<&Entry> = entries.iter().filter(|e| e.skipped.is_none()).collect();
    let header = ["name", "mount point", "type", "statfs", "source", "options"];
    let rows: Vec<[String; 6]> = up
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                e.mountpoint.display().to_string(),
                e.fstype.clone(),
                e.statfs.clone(),
                e.source.clone(),
                e.options.clone(),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = width[i]));
            }
        }
        s
    };
    let mut out = vec![line(header)];
    out.extend(
        rows.iter()
            .map(|r| line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]])),
    );
    for e in entries.iter().filter(|e| e.skipped.is_some()) {
        out.push(format!(
            "skipped {}: {}",
            e.name,
            e.skipped.as_deref().unwrap_or_default()
        ));
    }
    out.join("\n")
}

fn summary(r: &Report) -> String {
    format!(
        "{} unmounted, {} lazily unmounted, {} loop devices detached, {} left to detach themselves, {} paths deleted",
        r.unmounted.len(),
        r.lazily_unmounted.len(),
        r.detached.len(),
        r.deferred.len(),
        r.removed.len()
    )
}

fn down(args: &[String]) -> u8 {
    let mut target = None;
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{DOWN_HELP}");
                return 0;
            }
            "--root" => match value(&mut it, "--root", "/tmp/racelab-fs-abc123") {
                Ok(v) => target = Some(Target::Root(PathBuf::from(v))),
                Err(code) => return code,
            },
            "--state" => match value(&mut it, "--state", "/tmp/racelab-fs-abc123/state.json") {
                Ok(v) => target = Some(Target::State(PathBuf::from(v))),
                Err(code) => return code,
            },
            "--json" => json = true,
            other => return usage_error(&format!("unknown option `{other}` for fs down")),
        }
    }
    let Some(target) = target else {
        return usage_error("fs down needs --root DIR or --state FILE (`fs up` printed the root)");
    };
    let started = Instant::now();
    let outcome = match fs_matrix::down(&target) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let (kind, report, path) = match &outcome {
        DownOutcome::NothingThere(p) => ("nothing_there", None, Some(p)),
        DownOutcome::TornDown(r) => ("torn_down", Some(r), None),
        DownOutcome::Swept(r) => ("swept", Some(r), None),
    };
    if json {
        let list = |f: fn(&Report) -> &Vec<PathBuf>| report.map(f).cloned().unwrap_or_default();
        let doc = serde_json::json!({
            "outcome": kind,
            "seconds": seconds,
            "unmounted": list(|r| &r.unmounted),
            "lazily_unmounted": list(|r| &r.lazily_unmounted),
            "detached": list(|r| &r.detached),
            "deferred": list(|r| &r.deferred),
            "removed": list(|r| &r.removed),
        });
        println!("{doc:#}");
        return 0;
    }
    match (report, path) {
        (Some(r), _) => {
            let what = if kind == "swept" { "no state file; swept what was mounted or attached under the root" } else { "torn down" };
            println!("{what} in {seconds:.2}s: {}", summary(r));
            for p in &r.lazily_unmounted {
                println!("  {} was busy and was detached lazily (MNT_DETACH)", p.display());
            }
            for d in &r.deferred {
                println!("  {} is still held by a user of the lazily unmounted filesystem; the kernel detaches it when that user exits", d.display());
            }
        }
        (None, Some(p)) => println!("nothing to tear down at {} (no state file there, nothing mounted or attached under it)", p.display()),
        (None, None) => {}
    }
    0
}
