//! racelab's lock library (`racelab_locks`): every strategy excludes its owners (threads and
//! `racelab __lockbench` processes doing a read-modify-write of a counter lose no increment);
//! LinkLock's on-disk layout, timeout and takeover; and interop with real flufl.lock from PyPI:
//! Python and racelab processes contend on one lock file, and each side waits for, times out on
//! and breaks the other's claim.
//!
//! The flufl.lock tests install flufl.lock into a venv under Cargo's target tmp dir (once; kept as
//! a cache). They need `python3 -m venv` (Debian: python3-venv) and PyPI, or a Python that has
//! flufl.lock in `RACELAB_FLUFL_PYTHON`; without either they fail and say so.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use racelab_locks::{worker, FileLock, LinkLock, LinkOptions, LockError, Strategy};

const RACELAB: &str = env!("CARGO_BIN_EXE_racelab");
const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/data/flufl_peer.py");

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("racelab-lockfile-")
        .tempdir()
        .expect("a temp dir")
}

fn counter_file(dir: &Path) -> PathBuf {
    let c = dir.join("counter");
    std::fs::write(&c, "0\n").expect("write counter");
    c
}

fn read_counter(c: &Path) -> u64 {
    std::fs::read_to_string(c)
        .expect("read counter")
        .trim()
        .parse()
        .expect("a number")
}

/// Entries left in `dir` besides the counter: a lock that released properly leaves nothing.
fn leftovers(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "counter")
        .collect();
    v.sort();
    v
}

#[test]
fn every_strategy_excludes_threads_and_processes() {
    for s in Strategy::ALL {
        let dir = tempdir();
        let counter = counter_file(dir.path());
        let opts = worker::WorkerOpts {
            strategy: s,
            lock: s.path_in(dir.path(), "t"),
            iters: 150,
            counter: Some(counter.clone()),
            lifetime: None,
            timeout: Some(Duration::from_secs(30)),
            min_time: None,
        };
        let mut expected = 0;
        if s.excludes_threads() {
            let r = worker::run_threads(&opts, 4)
                .unwrap_or_else(|e| panic!("{}: threads: {e}", s.name()));
            assert_eq!(r.acquired, 600, "{}", s.name());
            assert_eq!(r.waits.count, 600);
            expected += 600;
            assert_eq!(
                read_counter(&counter),
                expected,
                "{} lost increments between threads",
                s.name()
            );
        }
        if s.excludes_processes() {
            let r = worker::run_processes(Path::new(RACELAB), &opts, 3)
                .unwrap_or_else(|e| panic!("{}: processes: {e}", s.name()));
            assert_eq!(r.acquired, 450, "{}", s.name());
            expected += 450;
            assert_eq!(
                read_counter(&counter),
                expected,
                "{} lost increments between processes",
                s.name()
            );
        }
        // Kernel locks keep their (empty) lock file on purpose; file locks leave nothing.
        let left = leftovers(dir.path());
        match s {
            Strategy::Flock | Strategy::Fcntl | Strategy::Ofd => {
                assert_eq!(left, vec![format!("t.{}", s.name())])
            }
            _ => assert!(left.is_empty(), "{} left {left:?}", s.name()),
        }
    }
}

#[test]
fn fcntl_locks_do_not_exclude_threads_of_one_process_which_is_why_they_run_as_processes_only() {
    let dir = tempdir();
    let path = dir.path().join("p.fcntl");
    let mut a = racelab_locks::FcntlLock::new(&path);
    let mut b = racelab_locks::FcntlLock::new(&path);
    a.acquire(Some(Duration::from_millis(100))).expect("first");
    b.acquire(Some(Duration::from_millis(100)))
        .expect("POSIX locks belong to the process: the second handle gets it too");
    assert!(!Strategy::Fcntl.excludes_threads());
}

#[test]
fn link_lock_lays_out_flufl_locks_claim_and_expiry() {
    let dir = tempdir();
    let lockfile = dir.path().join("list.lock");
    let mut l = LinkLock::new(
        &lockfile,
        LinkOptions {
            lifetime: Duration::from_secs(15),
            ..LinkOptions::default()
        },
    )
    .expect("new");
    let claim = l.claim_file().to_path_buf();
    let name = claim.to_str().expect("utf-8").to_string();
    let parts: Vec<&str> = name.split('|').collect();
    assert_eq!(parts.len(), 4, "{name}");
    assert_eq!(parts[0], lockfile.to_str().expect("utf-8"));
    assert_eq!(parts[2], std::process::id().to_string());
    assert!(parts[3].parse::<u64>().is_ok(), "{name}");

    l.acquire(None).expect("acquire");
    let m = std::fs::metadata(&lockfile).expect("lock file");
    assert_eq!(m.nlink(), 2);
    assert_eq!(m.ino(), std::fs::metadata(&claim).expect("claim").ino());
    assert_eq!(
        std::fs::read_to_string(&lockfile).expect("read"),
        name,
        "the lock file names the claim, no newline"
    );
    let expiry = m
        .modified()
        .expect("mtime")
        .duration_since(SystemTime::now())
        .expect("mtime is in the future");
    assert!(
        expiry > Duration::from_secs(14) && expiry <= Duration::from_secs(15),
        "{expiry:?}"
    );

    // A second owner times out and leaves no claim behind.
    let mut other = LinkLock::new(&lockfile, LinkOptions::default()).expect("new");
    let t = Instant::now();
    match other.acquire(Some(Duration::from_millis(200))) {
        Err(LockError::TimedOut { .. }) => {}
        r => panic!("expected a timeout, got {r:?}"),
    }
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert!(!other.claim_file().exists());

    l.release().expect("release");
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

#[test]
fn link_lock_takes_over_an_expired_lock_and_its_old_holder_learns_it() {
    let dir = tempdir();
    let lockfile = dir.path().join("list.lock");
    let short = LinkOptions {
        lifetime: Duration::from_millis(300),
        clock_slop: Duration::from_millis(100),
        ..LinkOptions::default()
    };
    let mut stalled = LinkLock::new(&lockfile, short.clone()).expect("new");
    stalled.acquire(None).expect("acquire");
    let old_claim = stalled.claim_file().to_path_buf();

    let mut taker = LinkLock::new(&lockfile, short).expect("new");
    let t = Instant::now();
    taker
        .acquire(Some(Duration::from_secs(10)))
        .expect("takes the expired lock over");
    // Expiry (lifetime + slop) and then the grace (one lifetime).
    assert!(
        t.elapsed() >= Duration::from_millis(650),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        std::fs::read_to_string(&lockfile).expect("read"),
        taker.claim_file().to_str().expect("utf-8")
    );
    assert!(!old_claim.exists(), "the expired holder's claim is removed");
    assert!(!PathBuf::from(format!("{}.brk", taker.claim_file().display())).exists());

    match stalled.release() {
        Err(LockError::NotLocked { why, .. }) => assert!(why.contains("broken"), "{why}"),
        r => panic!("the stalled holder must learn it lost the lock: {r:?}"),
    }
    taker.release().expect("release");
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}

#[test]
fn link_lock_refuses_a_path_with_the_claim_separator() {
    match LinkLock::new(Path::new("/tmp/a|b.lock"), LinkOptions::default()) {
        Err(LockError::BadInput(m)) => assert!(m.contains("separator"), "{m}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("accepted a path with `|`"),
    }
}

// ---- flufl.lock interop ----

/// A Python with flufl.lock installed, or why there is none.
fn flufl_python() -> &'static Result<PathBuf, String> {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PY.get_or_init(|| {
        if let Some(p) = std::env::var_os("RACELAB_FLUFL_PYTHON") {
            return Ok(PathBuf::from(p));
        }
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("flufl-venv");
        let py = venv.join("bin/python3");
        let ok = |py: &Path| {
            Command::new(py)
                .args(["-c", "import flufl.lock"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if ok(&py) {
            return Ok(py);
        }
        let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{what} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        let _ = std::fs::remove_dir_all(&venv);
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv (Debian: apt-get install python3-venv)",
        )?;
        run(
            Command::new(venv.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "flufl.lock==10.0.0",
            ]),
            "pip install flufl.lock==10.0.0 (needs PyPI)",
        )?;
        if ok(&py) {
            Ok(py)
        } else {
            Err(format!(
                "{} cannot import flufl.lock after installing it",
                py.display()
            ))
        }
    })
}

pub(crate) fn python() -> PathBuf {
    match flufl_python() {
        Ok(p) => p.clone(),
        Err(why) => panic!("the flufl.lock interop test needs Python with flufl.lock: {why}. Install python3-venv and allow PyPI, or point RACELAB_FLUFL_PYTHON at a python3 that has flufl.lock"),
    }
}

/// A flufl.lock peer process; killed and reaped if the test fails before it ends.
struct Peer {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Peer {
    fn start(args: &[&str], slop_s: f64) -> Peer {
        let mut child = Command::new(python())
            .arg(PEER)
            .args(args)
            .env("FLUFL_SLOP", slop_s.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python");
        let out = BufReader::new(child.stdout.take().expect("piped stdout"));
        Peer { child, out }
    }

    fn line(&mut self) -> String {
        let mut s = String::new();
        self.out.read_line(&mut s).expect("read peer output");
        assert!(!s.is_empty(), "the flufl.lock peer ended without a word");
        s.trim().to_string()
    }

    fn finish(mut self) {
        let st = self.child.wait().expect("wait for python");
        assert!(st.success(), "flufl.lock peer: {st}");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn opts(lifetime_ms: u64, slop_ms: u64) -> LinkOptions {
    LinkOptions {
        lifetime: Duration::from_millis(lifetime_ms),
        clock_slop: Duration::from_millis(slop_ms),
        ..LinkOptions::default()
    }
}

#[test]
fn flufl_lock_interop() {
    let dir = tempdir();
    let lockfile = dir.path().join("list.lock");
    let lock_s = lockfile.to_str().expect("utf-8");

    // 1. Contention: 2 flufl.lock and 2 racelab processes, 250 read-modify-writes each.
    let counter = counter_file(dir.path());
    let rounds = 250u64;
    let t = Instant::now();
    let pys: Vec<Peer> = (0..2)
        .map(|_| {
            Peer::start(
                &[
                    "contend",
                    lock_s,
                    counter.to_str().expect("utf-8"),
                    &rounds.to_string(),
                ],
                10.0,
            )
        })
        .collect();
    let wopts = worker::WorkerOpts {
        strategy: Strategy::Link,
        lock: lockfile.clone(),
        iters: rounds,
        counter: Some(counter.clone()),
        lifetime: None,
        timeout: Some(Duration::from_secs(60)),
        min_time: None,
    };
    let rust =
        worker::run_processes(Path::new(RACELAB), &wopts, 2).expect("racelab LinkLock processes");
    for mut p in pys {
        assert_eq!(p.line(), "done");
        p.finish();
    }
    let mixed = t.elapsed();
    assert_eq!(
        read_counter(&counter),
        4 * rounds,
        "an increment was lost: two holders at once"
    );
    assert_eq!(rust.acquired, 2 * rounds);
    assert!(
        leftovers(dir.path()).is_empty(),
        "left behind: {:?}",
        leftovers(dir.path())
    );
    std::fs::remove_file(&counter).expect("rm counter");

    // 2. racelab waits for a flufl.lock holder, and times out on one.
    let mut holder = Peer::start(&["hold", lock_s, "15", "1.0"], 10.0);
    assert!(holder.line().starts_with("locked"));
    let mut l = LinkLock::new(&lockfile, LinkOptions::default()).expect("new");
    match l.acquire(Some(Duration::from_millis(200))) {
        Err(LockError::TimedOut { .. }) => {}
        r => panic!("racelab should time out on flufl.lock's fresh lock: {r:?}"),
    }
    let t = Instant::now();
    l.acquire(Some(Duration::from_secs(10)))
        .expect("racelab gets the lock once flufl.lock releases it");
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}: acquired while flufl.lock held it",
        t.elapsed()
    );
    assert_eq!(holder.line(), "unlocked");
    holder.finish();

    // 3. flufl.lock times out on racelab's lock, then waits for it.
    let mut to = Peer::start(&["timeout", lock_s, "0.3"], 10.0);
    assert!(
        to.line().starts_with("timeout"),
        "flufl.lock did not time out on racelab's lock"
    );
    to.finish();
    let mut waiter = Peer::start(&["acquire", lock_s, "15"], 10.0);
    std::thread::sleep(Duration::from_millis(500));
    l.release().expect("release");
    assert!(waiter.line().starts_with("locked"));
    assert_eq!(waiter.line(), "unlocked");
    waiter.finish();
    assert!(
        leftovers(dir.path()).is_empty(),
        "left behind: {:?}",
        leftovers(dir.path())
    );

    // 4. racelab breaks an expired claim of a crashed flufl.lock holder (lifetime 1 s, slop 1 s).
    let mut dead = Peer::start(&["crash", lock_s, "1"], 1.0);
    let dead_claim = dead.line().trim_start_matches("locked ").to_string();
    dead.finish();
    assert!(Path::new(&dead_claim).exists());
    let mut l = LinkLock::new(&lockfile, opts(1000, 1000)).expect("new");
    let t = Instant::now();
    l.acquire(Some(Duration::from_secs(20)))
        .expect("racelab breaks the expired flufl.lock claim");
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "{:?}: broke a lock before it expired",
        t.elapsed()
    );
    assert!(
        !Path::new(&dead_claim).exists(),
        "the dead holder's claim is removed"
    );
    assert_eq!(
        std::fs::read_to_string(&lockfile).expect("read"),
        l.claim_file().to_str().expect("utf-8")
    );

    // 5. flufl.lock breaks an expired claim of a crashed racelab holder (the handle is leaked:
    //    nothing releases it, as after SIGKILL).
    let claim = l.claim_file().to_path_buf();
    std::mem::forget(l);
    let mut breaker = Peer::start(&["acquire", lock_s, "15"], 1.0);
    let got = breaker.line();
    let waited: f64 = got
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("elapsed");
    assert!(
        waited >= 1.0,
        "flufl.lock broke racelab's lock after {waited}s, before it expired"
    );
    assert_eq!(breaker.line(), "unlocked");
    breaker.finish();
    assert!(
        !claim.exists(),
        "flufl.lock's _break removes the winner's claim"
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "left behind: {:?}",
        leftovers(dir.path())
    );

    // 6. Throughput, uncontended, in the same run: flufl.lock as shipped against LinkLock.
    let iters = 2000u64;
    let out = Command::new(python())
        .arg(PEER)
        .args(["bench", lock_s, &iters.to_string()])
        .output()
        .expect("python bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flufl: f64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ops/s");
    let ours = worker::run_threads(
        &worker::WorkerOpts {
            strategy: Strategy::Link,
            lock: lockfile.clone(),
            iters,
            counter: None,
            lifetime: None,
            timeout: None,
            min_time: None,
        },
        1,
    )
    .expect("bench")
    .throughput();
    println!(
        "flufl.lock interop: {} increments by 2 flufl.lock + 2 racelab processes in {:.2}s, none lost; uncontended acquire+release: LinkLock {ours:.0}/s, flufl.lock {flufl:.0}/s, LinkLock / flufl.lock = {:.1}x",
        4 * rounds,
        mixed.as_secs_f64(),
        ours / flufl
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "left behind: {:?}",
        leftovers(dir.path())
    );
}
