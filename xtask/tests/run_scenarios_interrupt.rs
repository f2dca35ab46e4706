//! Interrupting `cargo xtask run-scenarios` in the middle of its real-filesystem runs (SIGINT,
//! then SIGTERM) leaves no mount, loop device, worker process or temp directory behind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

mod common;
use common::{racelab, workspace};

fn lines_of(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Mount points and loop backing files under `root`, and worker processes working under `dir`.
fn leftovers(root: &Path, worker_dir: Option<&Path>) -> Vec<String> {
    let root_s = root.to_string_lossy().into_owned();
    let mut out: Vec<String> = lines_of("/proc/self/mountinfo")
        .into_iter()
        .filter(|l| l.contains(&root_s))
        .collect();
    for e in std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let backing =
            std::fs::read_to_string(e.path().join("loop/backing_file")).unwrap_or_default();
        if backing.contains(&root_s) {
            out.push(format!(
                "loop device {:?} backed by {}",
                e.file_name(),
                backing.trim()
            ));
        }
    }
    for p in std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let cmd = std::fs::read_to_string(p.path().join("cmdline")).unwrap_or_default();
        let in_dir = worker_dir.is_some_and(|d| cmd.contains(&*d.to_string_lossy()))
            || cmd.contains(&root_s);
        if cmd.contains("__worker") && in_dir {
            out.push(format!("worker process {:?}", p.file_name()));
        }
    }
    if root.exists() {
        out.push(format!("matrix root {} still exists", root.display()));
    }
    out
}

#[test]
fn interrupting_run_scenarios_mid_matrix_leaves_nothing_behind() {
    let racelab = racelab();
    let scenario = workspace().join("scenarios").join("mailman-lockfile.race");
    let is_root = nix::unistd::Uid::effective().is_root();
    let temp_dirs = || -> Vec<PathBuf> {
        std::fs::read_dir(std::env::temp_dir())
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains("racelab-tempdir-"))
            .collect()
    };
    let before = temp_dirs();
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        let mut child = Command::new(XTASK)
            // native-random finds the breaking variants' tokens in milliseconds, so the real runs
            // this test interrupts start soon (loom spent a minute on the model part first).
            .args([
                "run-scenarios",
                "--quick",
                "--engines",
                "native-random",
                "--racelab",
            ])
            .arg(&racelab)
            .arg("--scenarios")
            .arg(&scenario)
            .current_dir(workspace())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("xtask starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // The matrix root (as root), or the report that it is unavailable (otherwise).
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut matrix_root = None;
        while Instant::now() < deadline && matrix_root.is_none() {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.starts_with("filesystem matrix up at ") => {
                    let rest = &line["filesystem matrix up at ".len()..];
                    matrix_root = rest.rsplit_once(" in ").map(|(p, _)| PathBuf::from(p));
                }
                Ok(line) if line.starts_with("filesystem matrix unavailable") => {
                    assert!(!is_root, "as root the matrix must come up: {line}");
                    break;
                }
                _ => {}
            }
        }
        let Some(root) = matrix_root else {
            // Not root: the run goes on with the temp dir only; interrupting must still work.
            assert!(!is_root, "the matrix never came up");
            std::thread::sleep(Duration::from_secs(2));
            kill(Pid::from_raw(child.id() as i32), sig).expect("signal");
            let status = child.wait().expect("exits");
            assert_eq!(status.code(), Some(128 + sig as i32), "{sig}");
            continue;
        };
        // Wait until real runs are under way on the matrix: a run directory in one of its
        // filesystems (the model part of the suite comes first).
        let busy = |root: &Path| {
            std::fs::read_dir(root.join("mnt"))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .any(|m| {
                    std::fs::read_dir(m.path().join("racelab"))
                        .into_iter()
                        .flatten()
                        .filter_map(Result::ok)
                        .any(|e| e.file_name().to_string_lossy().starts_with("racelab-"))
                })
        };
        let deadline = Instant::now() + Duration::from_secs(240);
        while !busy(&root) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            busy(&root),
            "{sig}: no real run started on the matrix in 240 s"
        );
        kill(Pid::from_raw(child.id() as i32), sig).expect("signal");
        let status = child.wait().expect("exits");
        assert_eq!(status.code(), Some(128 + sig as i32), "{sig}: {status:?}");
        let left = leftovers(&root, None);
        assert!(left.is_empty(), "{sig}: left behind: {left:#?}");
        // The NFS part runs beside the main suite: its guest must be gone too.
        let guests = guest_processes();
        assert!(
            guests.is_empty(),
            "{sig}: NFS guest processes left: {guests:?}"
        );
        let new_temp: Vec<PathBuf> = temp_dirs()
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        assert!(
            new_temp.is_empty(),
            "{sig}: temp dirs left behind: {new_temp:?}"
        );
    }
}

/// Processes of the NFS guest run-scenarios starts beside its main suite (the default rig).
fn guest_processes() -> Vec<String> {
    xtask::nfs::guest_processes(Path::new(xtask::nfs::DEFAULT_RIG))
}
