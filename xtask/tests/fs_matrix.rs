//! End-to-end tests of `cargo xtask fs up/down`: the real binary, real mounts, and the kernel's word on what is left behind.
//!
//! "Nothing left behind" is checked against the kernel, not against our own records:
//! /proc/self/mountinfo for mounts, /sys/block/loop*/loop/backing_file for loop devices, and the
//! directory itself. Without root the matrix cannot exist, so every test then checks the one
//! thing that must hold instead: `fs up` refuses with exit code 3 and says what to do.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_xtask");

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn xtask(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {BIN} {args:?} failed: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What every test asserts when it is not run as root: a clear refusal, exit code 3.
fn assert_refuses_without_root(cmd: &mut Command) {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?} failed: {e}"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(3),
        "fs up without root must exit 3 (infrastructure)\n{}",
        text(&o)
    );
    assert!(
        err.contains("needs root") && err.contains("Run it as root"),
        "the refusal must say what to do\n{}",
        text(&o)
    );
}

/// A root path for one test that does not exist yet (left-overs of an earlier failed run are torn down first).
fn fresh_root(tag: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("racelab-fs-test-{tag}-{}", std::process::id()));
    if root.exists() {
        let o = xtask(&["fs", "down", "--root", &root.to_string_lossy()]);
        assert!(
            o.status.success(),
            "cleaning up an earlier run at {} failed\n{}",
            root.display(),
            text(&o)
        );
        let _ = std::fs::remove_dir(&root);
    }
    assert!(
        !root.exists(),
        "{} exists and is not ours to delete",
        root.display()
    );
    root
}

fn mounts_under(root: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_else(|e| panic!("reading /proc/self/mountinfo: {e}"));
    let prefix = format!("{}/", root.display());
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|mp| *mp == root.to_string_lossy() || mp.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

fn loops_under(root: &Path) -> Vec<String> {
    let prefix = format!("{}/", root.display());
    let Ok(rd) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
        .filter_map(|e| {
            std::fs::read_to_string(e.path().join("loop/backing_file"))
                .ok()
                .map(|b| (e.file_name(), b))
        })
        .filter(|(_, b)| b.starts_with(&prefix))
        .map(|(n, b)| format!("/dev/{} -> {}", n.to_string_lossy(), b.trim()))
        .collect()
}

fn assert_nothing_left(root: &Path) {
    assert_eq!(
        mounts_under(root),
        Vec::<String>::new(),
        "mounts left under {}",
        root.display()
    );
    assert_eq!(
        loops_under(root),
        Vec::<String>::new(),
        "loop devices left backed by files under {}",
        root.display()
    );
    assert!(
        !root.exists(),
        "the matrix root {} is still there",
        root.display()
    );
}

fn read_state(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn done_mounts(state: &serde_json::Value) -> usize {
    state["actions"].as_array().map_or(0, |a| {
        a.iter()
            .filter(|x| x["op"]["kind"] == "mount" && x["status"] == "done")
            .count()
    })
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                panic!("fs up did not exit within {within:?} of being signalled");
            }
            Err(e) => panic!("waiting for fs up failed: {e}"),
        }
    }
}

fn tool_installed(name: &str) -> bool {
    ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(name).exists())
}

#[test]
fn up_then_down_leaves_nothing_behind() {
    if !is_root() {
        assert_refuses_without_root(Command::new(BIN).args(["fs", "up"]));
        return;
    }
    let started = Instant::now();
    let o = xtask(&["fs", "up", "--json"]);
    let up_secs = started.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(0), "fs up failed\n{}", text(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("fs up --json printed no JSON ({e})\n{}", text(&o)));
    let root = PathBuf::from(
        doc["root"]
            .as_str()
            .unwrap_or_else(|| panic!("no root in {doc}")),
    );
    assert!(
        root.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("racelab-fs-")),
        "default root {}",
        root.display()
    );
    let entries = doc["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries in {doc}"));
    let names: Vec<&str> = entries.iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["tmpfs", "ext4", "xfs", "btrfs", "overlay"]);
    let mounted = mounts_under(&root);
    for e in entries {
        let name = e["name"].as_str().unwrap_or_default();
        // tmpfs, ext4 (e2fsprogs is essential in Debian) and overlay need nothing installed: they
        // must come up. xfs and btrfs must come up exactly when their mkfs is installed.
        let must_be_up = match name {
            "xfs" => tool_installed("mkfs.xfs"),
            "btrfs" => tool_installed("mkfs.btrfs"),
            _ => true,
        };
        if !must_be_up {
            let reason = e["skipped"].as_str().unwrap_or_default();
            assert!(
                reason.contains("apt-get install"),
                "{name} without its mkfs must be skipped with the fix: {e}"
            );
            continue;
        }
        assert!(e["skipped"].is_null(), "{name} did not come up: {e}");
        assert_eq!(e["fstype"], name, "mountinfo type of {name}: {e}");
        let mp = e["mountpoint"].as_str().unwrap_or_default();
        assert!(
            mounted.iter().any(|m| m == mp),
            "{mp} is not in /proc/self/mountinfo: {mounted:?}"
        );
        let dir = PathBuf::from(e["dir"].as_str().unwrap_or_default());
        let probe = dir.join("written-by-test");
        std::fs::write(&probe, b"x").unwrap_or_else(|err| {
            panic!(
                "the scenario dir {} of {name} is not writable: {err}",
                dir.display()
            )
        });
    }
    assert!(
        read_state(&root.join("state.json")).is_some_and(|s| s["complete"] == true),
        "state.json must say the matrix is complete"
    );
    assert!(
        !loops_under(&root).is_empty(),
        "ext4 is up, so a loop device must be backed by an image under {}",
        root.display()
    );

    let started = Instant::now();
    let o = xtask(&["fs", "down", "--root", &root.to_string_lossy()]);
    let down_secs = started.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(0), "fs down failed\n{}", text(&o));
    assert_nothing_left(&root);
    eprintln!("fs up took {up_secs:.2}s, fs down {down_secs:.2}s");

    // Idempotent: a second down finds nothing and says so.
    let o = xtask(&["fs", "down", "--root", &root.to_string_lossy()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a second fs down must succeed\n{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("nothing to tear down"),
        "{}",
        text(&o)
    );
}

/// Starts `fs up --hold`, signals it once two mounts are done, and checks it tore everything down.
fn signal_tears_down(sig: Signal, tag: &str, expected_code: i32) {
    if !is_root() {
        assert_refuses_without_root(Command::new(BIN).args(["fs", "up", "--hold"]));
        return;
    }
    let root = fresh_root(tag);
    let mut child = Command::new(BIN)
        .args(["fs", "up", "--hold", "--json", "--root"])
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting fs up: {e}"));
    let state = root.join("state.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen = 0;
    while seen < 2 {
        if let Ok(Some(s)) = child.try_wait() {
            panic!("fs up --hold exited on its own ({s}) before two mounts were up");
        }
        assert!(
            Instant::now() < deadline,
            "fs up did not get two mounts up within 120s (saw {seen})"
        );
        seen = read_state(&state).map_or(0, |s| done_mounts(&s));
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        !mounts_under(&root).is_empty(),
        "the state file says two mounts are done, but the kernel shows none"
    );
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    kill(pid, sig).unwrap_or_else(|e| panic!("sending {sig} to fs up: {e}"));
    let status = wait_exit(&mut child, Duration::from_secs(60));
    let out = child
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    assert_eq!(
        status.code(),
        Some(expected_code),
        "fs up after {sig} must exit {expected_code} ({status:?})\nstderr:\n{out}"
    );
    assert!(
        out.contains("tearing down"),
        "it must say it is tearing down:\n{out}"
    );
    assert_nothing_left(&root);
}

#[test]
fn sigint_during_up_tears_down() {
    signal_tears_down(Signal::SIGINT, "sigint", 130);
}

#[test]
fn sigterm_during_up_tears_down() {
    signal_tears_down(Signal::SIGTERM, "sigterm", 143);
}

#[test]
fn down_finishes_a_crashed_half_finished_up() {
    if !is_root() {
        assert_refuses_without_root(Command::new(BIN).args(["fs", "up", "--only", "tmpfs,ext4"]));
        return;
    }
    // Intent-log actions with --only tmpfs,ext4: 0 mkdir mnt, 1 mkdir img, 2 mkdir mnt/tmpfs,
    // 3 mount tmpfs, 4 ext4 image, 5 mkfs, 6 loop, 7 mkdir mnt/ext4, 8 mount ext4.
    // Each case is checked against the log below, so a renumbering fails loudly here.
    let cases: [(&str, &str, bool); 3] = [
        // The loop device is attached, but which one it is was never recorded.
        ("6", "loop", true),
        // The ext4 mount is logged as intended but never happened.
        ("8,before", "mount", false),
        // ext4 is mounted, but the log still says only "intent".
        ("8", "mount", true),
    ];
    for (i, (crash, last_kind, performed)) in cases.into_iter().enumerate() {
        let root = fresh_root(&format!("crash{i}"));
        let o = Command::new(BIN)
            .args([
                "fs",
                "up",
                "--only",
                "tmpfs,ext4",
                "--crash-at",
                crash,
                "--root",
            ])
            .arg(&root)
            .output()
            .unwrap_or_else(|e| panic!("running fs up: {e}"));
        assert_eq!(
            o.status.signal(),
            Some(9),
            "--crash-at {crash} must SIGKILL fs up\n{}",
            text(&o)
        );
        let state_path = root.join("state.json");
        let state = read_state(&state_path)
            .unwrap_or_else(|| panic!("no readable state file after the crash at {crash}"));
        let last = state["actions"]
            .as_array()
            .and_then(|a| a.last())
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            last["op"]["kind"], last_kind,
            "crash {crash}: last logged action {last}"
        );
        assert_eq!(
            last["status"], "intent",
            "crash {crash}: the last action must not be recorded as done: {last}"
        );
        assert_eq!(state["complete"], false);
        // Prove the up really is half-finished: the kernel holds what the log only intended.
        assert!(
            !mounts_under(&root).is_empty(),
            "crash {crash}: tmpfs should still be mounted"
        );
        assert!(
            !loops_under(&root).is_empty(),
            "crash {crash}: the ext4 image should still be attached"
        );
        if performed && last_kind == "mount" {
            assert_eq!(
                mounts_under(&root).len(),
                2,
                "crash {crash}: ext4 should be mounted as well as tmpfs"
            );
        }

        let o = xtask(&["fs", "down", "--state", &state_path.to_string_lossy()]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "fs down after crash {crash}\n{}",
            text(&o)
        );
        assert_nothing_left(&root);
        let o = xtask(&["fs", "down", "--state", &state_path.to_string_lossy()]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "a second fs down after crash {crash} must succeed\n{}",
            text(&o)
        );
    }
}

#[test]
fn up_refuses_without_root_with_exit_3() {
    if is_root() {
        // Drop to nobody for this one run, so the refusal is tested on every machine.
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let setpriv = setpriv.unwrap_or_else(|| {
            panic!("setpriv (util-linux) is needed to run fs up as a non-root user")
        });
        assert_refuses_without_root(Command::new(setpriv).args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "fs",
            "up",
        ]));
    } else {
        assert_refuses_without_root(Command::new(BIN).args(["fs", "up"]));
    }
}

#[test]
fn a_busy_mount_is_detached_lazily_and_its_loop_device_follows() {
    if !is_root() {
        assert_refuses_without_root(Command::new(BIN).args(["fs", "up", "--only", "ext4"]));
        return;
    }
    let root = fresh_root("busy");
    let o = Command::new(BIN)
        .args(["fs", "up", "--only", "ext4", "--root"])
        .arg(&root)
        .output()
        .unwrap_or_else(|e| panic!("fs up: {e}"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A process whose working directory is on the filesystem keeps it busy: umount gets EBUSY.
    let mut squatter = Command::new("sleep")
        .arg("60")
        .current_dir(root.join("mnt/ext4/racelab"))
        .spawn()
        .unwrap_or_else(|e| panic!("starting sleep inside the mount: {e}"));
    let o = xtask(&["fs", "down", "--root", &root.to_string_lossy()]);
    let _ = squatter.kill();
    let _ = squatter.wait();
    assert_eq!(
        o.status.code(),
        Some(0),
        "fs down with a busy mount\n{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("detached lazily"),
        "it must say it detached lazily\n{}",
        text(&o)
    );
    // Once the squatter is gone the kernel releases the filesystem and, with it, the loop device.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !loops_under(&root).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_nothing_left(&root);
}

#[test]
fn the_library_guard_tears_down_on_drop() {
    use xtask::fs_matrix::{Error, Kind, Matrix, Options};
    let root = std::env::temp_dir().join(format!("racelab-fs-test-guard-{}", std::process::id()));
    let opts = Options {
        root: Some(root.clone()),
        only: vec![Kind::Tmpfs, Kind::Ext4],
        crash: None,
    };
    if !is_root() {
        let err = Matrix::up(&opts)
            .err()
            .unwrap_or_else(|| panic!("Matrix::up must refuse without root"));
        assert!(
            matches!(err, Error::NotRoot { .. }) && err.exit_code() == 3,
            "{err}"
        );
        return;
    }
    let _ = fresh_root("guard");
    let m = Matrix::up(&opts).unwrap_or_else(|e| panic!("Matrix::up: {e}"));
    let up: Vec<&str> = m.available().map(|e| e.name.as_str()).collect();
    assert_eq!(up, ["tmpfs", "ext4"]);
    for e in m.available() {
        std::fs::write(e.dir.join("f"), b"x")
            .unwrap_or_else(|err| panic!("{} not writable: {err}", e.dir.display()));
    }
    assert_eq!(mounts_under(m.root()).len(), 2);
    drop(m);
    assert_nothing_left(&root);
}
