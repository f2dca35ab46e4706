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

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

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

#[test]
fn the_command_sees_nfs4_and_nfs3_mounts_and_its_exit_status_comes_back() {
    let _g = one_guest();
    let script = r#"grep -E ' nfs4? ' /proc/mounts | while read -r src dir fs opts rest; do echo "mount $dir $fs $opts"; done
echo "cwd=$(pwd)"
echo "dirs: $(test -d "$RACELAB_NFS4" && echo nfs4) $(test -d "$RACELAB_NFS3" && echo nfs3) $(test -d "$RACELAB_NFS3B" && echo nfs3b) $(test -d "$RACELAB_NFS4B" && echo nfs4b)"
grep -h '^name:' /proc/fs/nfsd/clients/*/info | sed 's/^/nfsd-client /'
exit 7"#;
    let Some(out) = as_root_or_refused(script) else {
        return;
    };
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(7),
        "the command's own exit status must come back\nstdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    let has = |needle: &str| {
        stdout
            .lines()
            .any(|l| l.starts_with("mount ") && l.contains(needle))
    };
    assert!(
        has(&format!("{RIG}/nfs4 nfs4 ")) && has("vers=4.2"),
        "no NFSv4.2 mount inside:\n{stdout}"
    );
    assert!(
        has(&format!("{RIG}/nfs3 nfs ")) && has("vers=3"),
        "no NFSv3 mount inside:\n{stdout}"
    );
    assert!(
        stdout.lines().any(
            |l| l.starts_with(&format!("mount {RIG}/nfs3b nfs ")) && l.contains("nosharecache")
        ),
        "no second NFSv3 client (nosharecache) inside:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!("cwd={}", workspace().display())),
        "the command runs in the caller's directory:\n{stdout}"
    );
    assert!(
        stdout.lines().any(
            |l| l.starts_with(&format!("mount {RIG}/nfs4b nfs4 ")) && l.contains("nosharecache")
        ),
        "no second NFSv4.2 mount (nosharecache) inside:\n{stdout}"
    );
    // Two NFSv4 *clients*, as two machines would be: the server tells them apart (their own
    // client IDs, leases and open owners), not one client with two superblocks.
    let clients: std::collections::BTreeSet<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("nfsd-client "))
        .collect();
    assert_eq!(
        clients.len(),
        2,
        "nfsd must see the nfs4 and nfs4b mounts as two clients with their own names:\n{stdout}"
    );
    assert!(
        stdout.contains("dirs: nfs4 nfs3 nfs3b nfs4b"),
        "RACELAB_NFS4/3/3B/4B name existing directories:\n{stdout}"
    );
    assert!(
        host_nfs_mounts().is_empty(),
        "host mounts: {:?}",
        host_nfs_mounts()
    );
}

/// Real NFS semantics racelab's NFS model must predict: client B (nfs3b) keeps the attributes
/// it fetched, so right after client A links a file, B still reports st_nlink == 1; after the
/// attribute cache times out (acregmin, 3 s) it sees 2.
#[test]
fn a_second_nfs3_client_sees_a_stale_link_count_right_after_a_link() {
    let _g = one_guest();
    let script = r#"set -e
cd "$RACELAB_NFS3"
rm -f claim lock
echo x > claim
echo "B-before=$(stat -c %h "$RACELAB_NFS3B/claim")"
ln claim lock
echo "A-after=$(stat -c %h claim)"
echo "B-after=$(stat -c %h "$RACELAB_NFS3B/claim")"
sleep 4
echo "B-later=$(stat -c %h "$RACELAB_NFS3B/claim")"
rm -f claim lock"#;
    let Some(out) = as_root_or_refused(script) else {
        return;
    };
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{}",
        text(&out.stderr)
    );
    for (what, want) in [
        ("B-before", "1"),
        ("A-after", "2"),
        ("B-after", "1"),
        ("B-later", "2"),
    ] {
        assert!(
            stdout.lines().any(|l| l == format!("{what}={want}")),
            "expected {what}={want} (client B's attribute cache):\n{stdout}"
        );
    }
}

#[test]
fn sigint_during_a_run_leaves_no_guest_process_and_no_runtime_files() {
    let _g = one_guest();
    if !is_root() {
        assert_refusal(&nfs_sh("true"));
        return;
    }
    let mut child = start_sleeping_run("");
    // Mid-run: the guest is up with its three NFS mounts, and none of them is on the host.
    assert!(
        !guest_processes().is_empty(),
        "expected the guest's processes while the command runs"
    );
    assert!(
        host_nfs_mounts().is_empty(),
        "NFS mounted on the host: {:?}",
        host_nfs_mounts()
    );
    assert!(
        Path::new(RIG).join("cmd").exists(),
        "expected the command file while the command runs"
    );

    kill(
        Pid::from_raw(i32::try_from(child.id()).expect("pid")),
        Signal::SIGINT,
    )
    .expect("SIGINT delivered");
    let status = wait_limited(&mut child, Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(130),
        "an interrupted run exits 128 + SIGINT"
    );
    assert_nothing_left();
    assert!(
        Path::new(RIG).join("uml72/uml/usr/bin/linux.uml").exists(),
        "the unpacked UML package is a cache and stays"
    );
}

/// SIGKILL gives the run no chance to clean up: its watchdog kills the guest (here the qemu
/// fallback, forced) and removes the runtime files, holding the rig's lock until it is done.
#[test]
fn sigkill_during_a_run_leaves_nothing_behind_either() {
    let _g = one_guest();
    if !is_root() {
        assert_refusal(&nfs_sh("true"));
        return;
    }
    let mut child = start_sleeping_run("uml");
    assert!(
        !guest_processes().is_empty(),
        "expected the guest's processes while the command runs"
    );
    child.kill().expect("SIGKILL delivered");
    let _ = child.wait();
    // The watchdog works asynchronously: give it a moment, then everything must be gone.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (!guest_processes().is_empty() || !runtime_files_left().is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_nothing_left();
}

/// The fallback: when User-mode Linux fails (forced), qemu boots instead, with the same mounts,
/// the same view of the host, and the failed attempt named.
#[test]
fn the_qemu_fallback_is_taken_when_uml_fails() {
    let _g = one_guest();
    let script = r#"echo "kernel=$(uname -r)"; grep -E ' nfs4? ' /proc/mounts | while read -r src dir fs opts rest; do echo "mount $dir $fs"; done; echo "cwd=$(pwd)"; echo hi > "$RACELAB_NFS3/f"; echo "B sees: $(cat "$RACELAB_NFS3B/f")"; exit 5"#;
    let out = nfs_sh_failing(script, "uml");
    if !is_root() {
        assert_refusal(&out);
        return;
    }
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(5),
        "the command's status comes back from qemu too\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains("did not boot") && stderr.contains("forced to fail on purpose"),
        "the failed UML attempt is named:\n{stderr}"
    );
    assert!(
        stderr.contains("guest up in") && stderr.contains("qemu with TCG"),
        "qemu should have booted:\n{stderr}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("kernel=") && !l.starts_with("kernel=7.")),
        "a Debian 12 kernel, not UML's:\n{stdout}"
    );
    for m in [
        format!("mount {RIG}/nfs4 nfs4"),
        format!("mount {RIG}/nfs3 nfs"),
        format!("mount {RIG}/nfs3b nfs"),
    ] {
        assert!(stdout.lines().any(|l| l == m), "missing `{m}`:\n{stdout}");
    }
    assert!(
        stdout.contains(&format!("cwd={}", workspace().display())),
        "the host's files at the same paths:\n{stdout}"
    );
    assert!(
        stdout.contains("B sees: hi"),
        "client B reads what client A wrote:\n{stdout}"
    );
    assert_nothing_left();
}

/// No guest boots: exit 3, and the error names each attempt with its failing line.
#[test]
fn when_no_guest_boots_the_error_names_each_attempt_and_exits_3() {
    let _g = one_guest();
    let out = nfs_sh_failing("echo should-not-run", "uml,qemu");
    if !is_root() {
        assert_refusal(&out);
        return;
    }
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        !stdout.contains("should-not-run"),
        "the command must not have run:\n{stdout}"
    );
    let report: Vec<&str> = stderr
        .lines()
        .skip_while(|l| !l.contains("no NFS guest could boot"))
        .collect();
    assert!(
        report
            .iter()
            .any(|l| l.trim_start().starts_with("uml (User-mode Linux")
                && l.contains("forced to fail on purpose")),
        "the UML attempt and its line:\n{stderr}"
    );
    assert!(
        report.iter().any(
            |l| l.trim_start().starts_with("qemu (") && l.contains("forced to fail on purpose")
        ),
        "the qemu attempt and its line:\n{stderr}"
    );
    assert_nothing_left();
}

/// Watches the host's mount table for a whole run: the guest's mounts live in its own kernel.
#[test]
fn nothing_is_ever_mounted_on_the_host() {
    let _g = one_guest();
    let before = mountinfo();
    let mut child = Command::new(XTASK)
        .args([
            "nfs",
            "run",
            "--",
            "sh",
            "-c",
            "touch \"$RACELAB_NFS4/x\" \"$RACELAB_NFS3/y\"; sleep 1",
        ])
        .current_dir(workspace())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xtask starts");
    let mut appeared: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        for l in mountinfo() {
            if !before.contains(&l) && !appeared.contains(&l) {
                appeared.push(l);
            }
        }
        if let Some(s) = child.try_wait().expect("waiting") {
            break s;
        }
        assert!(Instant::now() < deadline, "nfs run did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    if !is_root() {
        assert_eq!(status.code(), Some(3));
        assert_eq!(
            appeared,
            Vec::<String>::new(),
            "mounts appeared on the host during a refused run"
        );
        return;
    }
    let mut err = String::new();
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    assert_eq!(status.code(), Some(0), "stderr:\n{err}");
    assert!(
        err.contains("guest up in"),
        "the guest should have booted:\n{err}"
    );
    assert_eq!(
        appeared,
        Vec::<String>::new(),
        "mounts appeared on the host during a run"
    );
}

#[test]
fn not_root_is_refused_with_exit_3() {
    let out = if is_root() {
        // Drop to nobody for this one run.
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                XTASK,
                "nfs",
                "run",
                "--",
                "true",
            ])
            .current_dir("/")
            .output()
            .expect("setpriv runs")
    } else {
        Command::new(XTASK)
            .args(["nfs", "run", "--", "true"])
            .output()
            .expect("xtask runs")
    };
    assert_refusal(&out);
}

/// The NFS part of `cargo xtask run-scenarios`: racelab's suite runs inside the guest with the
/// four NFS targets (one client, then two), and its `fs:nfs…` rows (with the guest's mount options) are merged into
/// the main summary. The guest and its mounts are real; racelab is a stand-in script here, so
/// the test takes seconds instead of the real suite's minutes.
#[test]
fn run_scenarios_merges_the_guest_suite_rows_into_the_main_summary() {
    let _g = one_guest();
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path();
    // The main suite's summary: a lock-scenario variant that ran on a local real filesystem.
    let row = |backend: &str| -> reports::RunResult {
        serde_json::from_str(&format!(
            r#"{{"scenario":"mailman-lockfile","variant":"mailman-2.1","engine":"forced-replay","backend":"{backend}","faults":null,"expected":"violation","expected_invariants":["mutual_exclusion"],"outcome":"violation","invariant":"mutual_exclusion","exhaustive":false,"schedules":100,"seconds":1.0,"first_failure_after":1,"replay":"rl1_x","met":true}}"#
        ))
        .expect("a valid row")
    };
    let main = reports::Summary {
        ok: true,
        results: vec![row("fs:tempdir")],
        shard: None,
    };
    reports::write_all(&main, &target.join("racelab")).expect("main summary written");
    // The stand-in racelab: records its arguments and writes one row per NFS target, with the
    // options of the mount its directory is on, as racelab's fsinfo would.
    let fake = target.join("fake-racelab");
    let args_file = target.join("args");
    std::fs::write(
        &fake,
        format!(
            r#"#!/bin/sh
echo "$@" >> {args}
out=; prev=
for a; do [ "$prev" = --out ] && out=$a; prev=$a; done
mkdir -p "$out"
opts() {{ awk -v m="$1" '$2 == m {{ print $4 }}' /proc/mounts; }}
row() {{ printf '{{"scenario":"mailman-lockfile","variant":"mailman-2.1","engine":"forced-replay","backend":"fs:%s","faults":null,"expected":"violation","outcome":"violation","invariant":"mutual_exclusion","exhaustive":false,"schedules":10,"seconds":1.0,"first_failure_after":1,"replay":"rl1_x","met":true,"env":{{"fs_type":"%s","mount_options":"%s"}}}}' "$1" "$2" "$3"; }}
rows=
for a; do
  case "$a" in
    --real=*=!*) ;;
    --real=nfs3=*) rows="$rows$(row nfs3 nfs3 "$(opts {rig}/nfs3)"),";;
    --real=nfs4=*) rows="$rows$(row nfs4 nfs4 "$(opts {rig}/nfs4)"),";;
    --real=nfs3x2=*) rows="$rows$(row nfs3x2 nfs3 "$(opts {rig}/nfs3b)"),";;
    --real=nfs4x2=*) rows="$rows$(row nfs4x2 nfs4 "$(opts {rig}/nfs4b)"),";;
  esac
done
printf '{{"ok":true,"results":[%s%s]}}' "$rows" \
  '{{"scenario":"mailman-lockfile","variant":"mailman-2.1","engine":"loom","backend":"model","faults":null,"expected":"violation","outcome":"violation","invariant":"mutual_exclusion","exhaustive":false,"schedules":10,"seconds":1.0,"first_failure_after":1,"replay":"rl1_x","met":true}}' > "$out/summary.json"
"#,
            args = args_file.display(),
            rig = RIG
        ),
    )
    .expect("stand-in written");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let params = xtask::nfs::suite::Params::new(fake.clone(), workspace(), target);
    let code = xtask::nfs::suite::run(&params).expect("the NFS part runs");
    let merged: reports::Summary = serde_json::from_str(
        &std::fs::read_to_string(target.join("racelab/summary.json")).expect("merged summary"),
    )
    .expect("parses");
    let backends: Vec<&str> = merged.results.iter().map(|r| r.backend.as_str()).collect();
    if !is_root() {
        assert_eq!(code, Some(0));
        assert_eq!(
            backends,
            ["fs:tempdir", "fs:nfs3", "fs:nfs4", "fs:nfs3x2", "fs:nfs4x2"]
        );
        assert!(merged.results[1..]
            .iter()
            .all(|r| r.outcome == reports::Outcome::Skipped
                && r.reason.as_deref().is_some_and(|w| w.contains("not root"))));
        return;
    }
    assert_eq!(code, Some(0), "merged rows: {backends:?}");
    assert_eq!(
        backends,
        ["fs:tempdir", "fs:nfs3", "fs:nfs4", "fs:nfs3x2", "fs:nfs4x2"],
        "only the guest's NFS rows are merged, after the main ones (one client, then two)"
    );
    let opts = |i: usize| {
        merged.results[i]
            .env
            .as_ref()
            .and_then(|e| e.mount_options.clone())
            .unwrap_or_default()
    };
    assert!(
        opts(1).contains("vers=3")
            && opts(2).contains("vers=4.2")
            && opts(3).contains("nosharecache")
            && opts(4).contains("vers=4.2")
            && opts(4).contains("nosharecache"),
        "mount options from the guest: {:?}",
        (opts(1), opts(2), opts(3), opts(4))
    );
    let served_by = |i: usize| {
        merged.results[i]
            .env
            .as_ref()
            .and_then(|e| e.server_version.clone())
            .unwrap_or_default()
    };
    assert!(
        (1..5).all(|i| served_by(i).starts_with("Linux knfsd in ")
            && (served_by(i).contains("User-mode Linux") || served_by(i).contains("qemu"))),
        "each row names the guest and kernel: {:?}",
        served_by(1)
    );
    let args = std::fs::read_to_string(&args_file).expect("racelab ran in the guest");
    // Only the lock scenarios the main run covered (here mailman-lockfile alone) are rerun.
    assert!(
        !args.contains("mailman-stale-lock"),
        "mailman-stale-lock was not in the main run: {args}"
    );
    for want in [
        "suite",
        "mailman-lockfile.race",
        "--quick",
        "--engines loom",
        "--engines native-random",
        &format!("--real=nfs3={RIG}/nfs3/racelab"),
        &format!("--real=nfs4={RIG}/nfs4/racelab"),
        &format!("--real=nfs3x2={RIG}/nfs3/racelab,{RIG}/nfs3b/racelab"),
        &format!("--real=nfs4x2={RIG}/nfs4/racelab,{RIG}/nfs4b/racelab"),
    ] {
        assert!(
            args.contains(want),
            "racelab suite should get {want}: {args}"
        );
    }
    let md =
        std::fs::read_to_string(target.join("racelab/summary.md")).expect("summary.md re-rendered");
    assert!(md.contains("nfs4"), "summary.md lists the NFS rows:\n{md}");
}
