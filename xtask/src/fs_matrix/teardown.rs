//! Undoing a matrix: unmount, detach loop devices, delete images and directories — idempotently.
//!
//! Every undo step first asks the kernel whether there is anything to undo (mountinfo, sysfs),
//! so it can run on a log whose last actions may never have happened, and twice in a row.
//! After the log is replayed backwards, a sweep catches anything under the root that the log
//! does not know about (a crash between an action and its record).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::{umount2, MntFlags};

use super::state::{Op, StateFile, Status, STATE_FILE};
use super::sys;

/// How often a plain unmount is retried when the filesystem is busy before we detach lazily.
const UMOUNT_TRIES: u32 = 5;
const UMOUNT_PAUSE: Duration = Duration::from_millis(200);

/// What teardown did, for the report, and what it could not do.
#[derive(Debug, Default)]
pub struct Report {
    pub unmounted: Vec<PathBuf>,
    /// Mounts that stayed busy and were detached with MNT_DETACH (gone from the namespace,
    /// released by the kernel when the last user closes its files).
    pub lazily_unmounted: Vec<PathBuf>,
    pub detached: Vec<PathBuf>,
    /// Loop devices still in use (by a lazily unmounted filesystem): `losetup -d` set autoclear,
    /// so the kernel detaches them as soon as the last user goes.
    pub deferred: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
    pub problems: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Unmounts whatever is mounted at `target`, retrying while busy and then detaching lazily.
fn unmount(target: &Path, report: &mut Report) {
    // A target can carry stacked mounts; each round removes the topmost. Bounded so a mount that
    // keeps coming back (someone else mounting there) cannot keep us here.
    for _ in 0..8 {
        match sys::mount_at(target) {
            Ok(None) => return,
            Ok(Some(_)) => {}
            Err(e) => {
                report.problems.push(format!(
                    "reading /proc/self/mountinfo to check {} failed: {e}",
                    target.display()
                ));
                return;
            }
        }
        let mut last = Errno::UnknownErrno;
        let mut ok = false;
        for attempt in 0..UMOUNT_TRIES {
            match umount2(target, MntFlags::empty()) {
                Ok(()) => {
                    ok = true;
                    break;
                }
                // Not a mount point (any more): someone or something unmounted it meanwhile.
                Err(Errno::EINVAL | Errno::ENOENT) => return,
                Err(e) => {
                    last = e;
                    if e != Errno::EBUSY {
                        break;
                    }
                    if attempt + 1 < UMOUNT_TRIES {
                        std::thread::sleep(UMOUNT_PAUSE);
                    }
                }
            }
        }
        if ok {
            report.unmounted.push(target.to_path_buf());
            continue;
        }
        // Still busy (a process has a file open or its cwd there): detach it from the namespace
        // now; the kernel frees it when the last user lets go, and nothing is left for us to see.
        match umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {
                report.lazily_unmounted.push(target.to_path_buf())
            }
            Err(e) => {
                report.problems.push(format!(
                    "umount {} failed ({last}), and so did the lazy `umount -l` ({e}); find the user with `fuser -vm {}` and run `cargo xtask fs down` again",
                    target.display(),
                    target.display()
                ));
                return;
            }
        }
    }
}

/// Detaches every loop device backed by `image` (found through sysfs, so an unrecorded one too).
fn detach_loops_of(image: &Path, report: &mut Report) {
    let devices = match sys::loop_devices() {
        Ok(d) => d,
        Err(e) => {
            report.problems.push(format!(
                "reading /sys/block to find the loop device of {} failed: {e}",
                image.display()
            ));
            return;
        }
    };
    // Matching on the backing file, not the recorded device name: a crash may have lost the name,
    // and a device number we recorded may since have been reused by someone else's image.
    for dev in devices.iter().filter(|d| d.backing_file == image) {
        detach(&dev.device, report);
    }
}

fn detach(device: &Path, report: &mut Report) {
    let Some(losetup) = sys::find_tool("losetup") else {
        report.problems.push(format!(
            "cannot detach {}: losetup not found (apt-get install -y mount)",
            device.display()
        ));
        return;
    };
    let mut cmd = Command::new(losetup);
    cmd.arg("-d").arg(device);
    match run_ignoring_signals(&mut cmd) {
        Ok(_) => {}
        Err(msg) => {
            report.problems.push(msg);
            return;
        }
    }
    // LOOP_CLR_FD on a device that is still open (a lazily unmounted filesystem on it) does not
    // detach: it sets autoclear and succeeds, and the kernel detaches when the last user goes.
    // Otherwise the detach completes as losetup closes the device; poll briefly for either.
    let name = device
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let sysfs = PathBuf::from("/sys/block").join(&name).join("loop");
    let backing = sysfs.join("backing_file");
    let autoclear =
        || std::fs::read_to_string(sysfs.join("autoclear")).is_ok_and(|s| s.trim() == "1");
    let started = Instant::now();
    while backing.exists() && started.elapsed() < Duration::from_secs(2) {
        if started.elapsed() > Duration::from_millis(200) && autoclear() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let autoclear = autoclear();
    if !backing.exists() {
        report.detached.push(device.to_path_buf());
    } else if autoclear {
        // The kernel took the detach request and will carry it out when the last user of the
        // device (a lazily unmounted filesystem still in use) lets go; nothing more we can do.
        report.deferred.push(device.to_path_buf());
    } else {
        report.problems.push(format!(
            "{} is still bound after `losetup -d`; check with `losetup -a` and run `cargo xtask fs down` again",
            device.display()
        ));
    }
}

/// Teardown runs after a signal too; it must not be cut short by one, so it does not poll the flag.
fn run_ignoring_signals(cmd: &mut Command) -> Result<String, String> {
    let shown = sys::display(cmd);
    let out = cmd
        .output()
        .map_err(|e| format!("`{shown}` could not be started: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Removes a path we created, unless something is still mounted on or below it (then deleting
/// would reach into that filesystem, or fail half-way).
fn remove(path: &Path, report: &mut Report) {
    match sys::mounts_under(path) {
        Ok(m) if !m.is_empty() => {
            report.problems.push(format!(
                "not deleting {}: {} is still mounted there; run `cargo xtask fs down` again once it is unmounted",
                path.display(),
                m[0].mountpoint.display()
            ));
            return;
        }
        Ok(_) => {}
        Err(e) => {
            report.problems.push(format!(
                "not deleting {}: reading /proc/self/mountinfo failed: {e}",
                path.display()
            ));
            return;
        }
    }
    let result = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    match result {
        Ok(()) => report.removed.push(path.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => report
            .problems
            .push(format!("deleting {} failed: {e}", path.display())),
    }
}

/// Undoes one logged operation (idempotent; a no-op if it never happened).
fn undo(op: &Op, root: &Path, report: &mut Report) {
    // The log is data from disk: never act on a path outside the matrix root.
    let inside = |p: &Path| p.starts_with(root) && p != root;
    match op {
        Op::Mount { target, .. } if inside(target) => unmount(target, report),
        Op::Loop { image, .. } if inside(image) => detach_loops_of(image, report),
        Op::Image { path, .. } | Op::Mkdir { path } if inside(path) => remove(path, report),
        Op::Mkfs { .. } => {}
        other => report.problems.push(format!(
            "ignoring a logged action outside the matrix root {}: {other:?}",
            root.display()
        )),
    }
}

/// Undoes actions `from..` of the log, newest first, marking each undone; used both to roll back
/// one filesystem that failed to come up and to tear down the whole matrix.
pub fn undo_from(sf: &mut StateFile, from: usize, report: &mut Report) {
    let root = sf.state.root.clone();
    for i in (from..sf.state.actions.len()).rev() {
        if sf.state.actions[i].status == Status::Undone {
            continue;
        }
        let before = report.problems.len();
        let op = sf.state.actions[i].op.clone();
        undo(&op, &root, report);
        if report.problems.len() == before {
            sf.state.actions[i].status = Status::Undone;
            // Keep the log truthful as we go, so an interrupted teardown resumes where it was.
            if let Err(e) = sf.save() {
                report.problems.push(format!("{e:#}"));
            }
        }
    }
}

/// Unmounts and detaches anything under `root` that the log does not account for.
pub fn sweep(root: &Path, report: &mut Report) {
    match sys::mounts_under(root) {
        // Newest first: a mount on top of another must go before the one below it.
        Ok(ms) => {
            for m in ms.iter().rev() {
                unmount(&m.mountpoint, report);
            }
        }
        Err(e) => report
            .problems
            .push(format!("reading /proc/self/mountinfo failed: {e}")),
    }
    match sys::loops_under(root) {
        Ok(ls) => {
            // A device whose detach the kernel already deferred needs nothing more from us.
            for l in ls {
                if !report.deferred.contains(&l.device) {
                    detach(&l.device, report);
                }
            }
        }
        Err(e) => report
            .problems
            .push(format!("reading /sys/block failed: {e}")),
    }
}

/// Tears down the whole matrix of `sf`, and removes its root (if `up` created it) and finally the
/// state file. The state file stays if anything could not be undone, so `fs down` can be rerun.
pub fn teardown(mut sf: StateFile) -> Report {
    let mut report = Report::default();
    let root = sf.state.root.clone();
    undo_from(&mut sf, 0, &mut report);
    sweep(&root, &mut report);
    if !report.is_clean() {
        return report;
    }
    if sf.state.created_root {
        // Everything but the log first, so that the log outlives anything it describes.
        match std::fs::read_dir(&root) {
            Ok(rd) => {
                for e in rd.flatten() {
                    if e.file_name() != STATE_FILE {
                        remove(&e.path(), &mut report);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report
                .problems
                .push(format!("listing {} failed: {e}", root.display())),
        }
    } else {
        remove(&sf.path.with_extension("json.tmp"), &mut report);
    }
    if !report.is_clean() {
        return report;
    }
    remove(&sf.path, &mut report);
    if sf.state.created_root {
        match std::fs::remove_dir(&root) {
            Ok(()) => report.removed.push(root),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report.problems.push(format!(
                "deleting the matrix root {} failed: {e}",
                root.display()
            )),
        }
    }
    report
}
