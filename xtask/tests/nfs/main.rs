//! `cargo xtask nfs run` end to end: real kernel NFS in a guest — the mounts, the exit status, real attribute caching between two NFSv3 clients, the fallback from User-mode Linux to qemu, teardown after Ctrl-C and SIGKILL, and no mount ever on the host.
//!
//! As root these boot the guest (about 2 s each with User-mode Linux once the rig's cache is
//! warm; the first run also downloads it; 15-30 s with the qemu fallback, which the fallback
//! tests force with `RACELAB_NFS_FAIL`). Not as root, each asserts the refusal (exit 3 and why).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod fallback;
mod mounts;
mod run_scenarios;
mod teardown;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

/// The default rig, shared with `cargo xtask run-scenarios` so its package cache serves both.
const RIG: &str = "/tmp/racelab-nfs";

/// One guest at a time: the runs share the rig (its lock would serialise them anyway), and the
/// teardown test must see the rig as its own run left it, not mid-way through another test's.
static GUEST: Mutex<()> = Mutex::new(());

fn one_guest() -> MutexGuard<'static, ()> {
    GUEST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// `cargo xtask nfs run -- sh -c SCRIPT`, waited for (with a generous limit: a first run
/// downloads the UML package).
fn nfs_sh(script: &str) -> Output {
    nfs_sh_failing(script, "")
}

/// `nfs_sh` with `RACELAB_NFS_FAIL=fail` (the guests to make fail on purpose).
fn nfs_sh_failing(script: &str, fail: &str) -> Output {
    let child = nfs_command(&["sh", "-c", script], fail)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xtask starts");
    wait_output(child, Duration::from_secs(300))
}

fn nfs_command(argv: &[&str], fail: &str) -> Command {
    let mut cmd = Command::new(XTASK);
    cmd.args(["nfs", "run", "--"])
        .args(argv)
        .current_dir(workspace())
        .env("RACELAB_NFS_FAIL", fail);
    cmd
}

fn wait_output(mut child: Child, limit: Duration) -> Output {
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = wait_limited(&mut child, limit);
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

fn wait_limited(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("waiting for xtask") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("xtask nfs run did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Not root: `nfs run` refuses with exit 3 and says why, before touching anything.
fn assert_refusal(out: &Output) {
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("needs root"),
        "the refusal should say it needs root: {}",
        text(&out.stderr)
    );
}

/// Runs the test body only as root; otherwise checks the refusal instead.
fn as_root_or_refused(script: &str) -> Option<Output> {
    let out = nfs_sh(script);
    if is_root() {
        return Some(out);
    }
    assert_refusal(&out);
    None
}

/// The runtime files a run puts in the rig: all gone when it has ended, however it ended.
fn runtime_files_left() -> Vec<&'static str> {
    [
        "cmd", "init", "export", "nfs4", "nfs3", "nfs3b", "nfs4b", "umid",
    ]
    .into_iter()
    .filter(|f| Path::new(RIG).join(f).exists())
    .collect()
}

/// Nothing of a run is left: no guest process, no host mount, no runtime file.
fn assert_nothing_left() {
    assert_eq!(
        guest_processes(),
        Vec::<String>::new(),
        "guest processes left behind"
    );
    assert!(
        host_nfs_mounts().is_empty(),
        "NFS mounted on the host: {:?}",
        host_nfs_mounts()
    );
    assert_eq!(
        runtime_files_left(),
        Vec::<&str>::new(),
        "runtime files left in {RIG}"
    );
}

/// Starts `nfs run` with a command that prints a line and sleeps, and waits for that line:
/// the guest is up, its mounts are made and the command runs. Returns the child (stdout taken).
fn start_sleeping_run(fail: &str) -> Child {
    let mut child = nfs_command(&["sh", "-c", "echo racelab-test-ready; sleep 600"], fail)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("xtask starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(l) if l == "racelab-test-ready" => return child,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("xtask ended before the command ran: {:?}", child.wait())
            }
        }
        assert!(Instant::now() < deadline, "the command never started");
    }
}

/// Host processes of a guest from the test rig.
fn guest_processes() -> Vec<String> {
    xtask::nfs::guest_processes(Path::new(RIG))
}

fn mountinfo() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The host's mounts that mention the rig or are NFS: there must never be any.
fn host_nfs_mounts() -> Vec<String> {
    mountinfo()
        .into_iter()
        .filter(|l| l.contains(RIG) || l.contains(" - nfs"))
        .collect()
}
