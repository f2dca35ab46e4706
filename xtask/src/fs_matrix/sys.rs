//! What the kernel says about mounts and loop devices, and running the external tools (mkfs, losetup).
//!
//! Everything here reads the kernel's own view (/proc/self/mountinfo, /sys/block/loop*) rather
//! than our records, so that teardown and the tests can check what is really left behind.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone)]
pub struct MountInfo {
    pub mountpoint: PathBuf,
    pub fstype: String,
    pub source: String,
    /// Per-mount options (field 6), e.g. `rw,relatime`.
    pub mount_opts: String,
    /// Per-superblock options (the last field), e.g. `rw,size=262144k`.
    pub super_opts: String,
}

impl MountInfo {
    /// The mount's options as `mount` shows them: per-mount first, then the superblock's, without repeats.
    pub fn options(&self) -> String {
        let mut seen: Vec<&str> = Vec::new();
        for o in self.mount_opts.split(',').chain(self.super_opts.split(',')) {
            if !o.is_empty() && !seen.contains(&o) {
                seen.push(o);
            }
        }
        seen.join(",")
    }
}

/// mountinfo escapes space, tab, newline and backslash in paths as `\ooo` octal.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (u32::from(b[i + 1] - b'0') << 6)
                | (u32::from(b[i + 2] - b'0') << 3)
                | u32::from(b[i + 3] - b'0');
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_mountinfo_line(line: &str) -> Option<MountInfo> {
    // id parent maj:min root mountpoint opts [optional fields...] - fstype source superopts
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    Some(MountInfo {
        mountpoint: PathBuf::from(unescape(l.get(4)?)),
        mount_opts: (*l.get(5)?).to_string(),
        fstype: (*r.first()?).to_string(),
        source: unescape(r.get(1)?),
        super_opts: r.get(2).map_or_else(String::new, |s| (*s).to_string()),
    })
}

/// Every mount in our mount namespace, in mount order (later mounts last).
pub fn mounts() -> std::io::Result<Vec<MountInfo>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text.lines().filter_map(parse_mountinfo_line).collect())
}

/// The topmost mount at exactly `target`, if `target` is a mount point.
pub fn mount_at(target: &Path) -> std::io::Result<Option<MountInfo>> {
    Ok(mounts()?.into_iter().rev().find(|m| m.mountpoint == target))
}

/// Mounts at or below `dir`, in mount order.
pub fn mounts_under(dir: &Path) -> std::io::Result<Vec<MountInfo>> {
    Ok(mounts()?
        .into_iter()
        .filter(|m| m.mountpoint.starts_with(dir))
        .collect())
}

/// A bound loop device and the file behind it, as /sys/block/loopN/loop/backing_file says.
#[derive(Debug, Clone)]
pub struct LoopDev {
    pub device: PathBuf,
    pub backing_file: PathBuf,
    /// The kernel appends " (deleted)" when the backing file was unlinked while attached.
    pub deleted: bool,
}

/// Every loop device that has a backing file. Unbound devices have no `loop/` directory in sysfs.
pub fn loop_devices() -> std::io::Result<Vec<LoopDev>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/sys/block")? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(raw) = std::fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        let raw = raw.trim_end_matches('\n');
        let (path, deleted) = match raw.strip_suffix(" (deleted)") {
            Some(p) => (p, true),
            None => (raw, false),
        };
        out.push(LoopDev {
            device: PathBuf::from("/dev").join(&name),
            backing_file: PathBuf::from(path),
            deleted,
        });
    }
    out.sort_by(|a, b| a.device.cmp(&b.device));
    Ok(out)
}

/// Loop devices whose backing file is `dir` or below it.
pub fn loops_under(dir: &Path) -> std::io::Result<Vec<LoopDev>> {
    Ok(loop_devices()?
        .into_iter()
        .filter(|l| l.backing_file.starts_with(dir))
        .collect())
}

/// statfs(2)'s f_type, named. ext2/3/4 share one magic number, so the name says so.
pub fn statfs_type(path: &Path) -> Result<String, nix::Error> {
    use nix::sys::statfs as s;
    let t = s::statfs(path)?.filesystem_type();
    let name = match t {
        s::TMPFS_MAGIC => "tmpfs",
        s::EXT4_SUPER_MAGIC => "ext2/ext3/ext4",
        s::XFS_SUPER_MAGIC => "xfs",
        s::BTRFS_SUPER_MAGIC => "btrfs",
        s::OVERLAYFS_SUPER_MAGIC => "overlay",
        other => return Ok(format!("unknown (magic {:#x})", other.0)),
    };
    Ok(name.to_string())
}

/// Finds an executable by name in PATH and in the sbin directories, which a non-login root
/// shell (sudo, CI runners) often leaves out of PATH although mkfs.* and losetup live there.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from);
    std::env::split_paths(&path)
        .chain(extra)
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Why running a command did not give us what we needed.
#[derive(Debug)]
pub enum CmdError {
    /// A signal asked us to stop while the command ran; the child was killed.
    Interrupted(i32),
    /// The command could not be started or failed; the text names the command and its stderr.
    Failed(String),
}

/// A command line as a person would type it, for messages and the intent log.
pub fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion and returns its stdout; any failure names the exact command and its stderr.
///
/// The child is polled rather than waited for, so that a Ctrl-C or SIGTERM sent to us alone
/// (not to the process group) still stops a slow mkfs promptly: we kill it and report the signal.
pub fn run(cmd: &mut Command) -> Result<String, CmdError> {
    let shown = display(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CmdError::Failed(format!("`{shown}` could not be started: {e}")))?;
    // Drain both pipes on threads so a chatty tool can never block on a full pipe while we poll.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                return Err(CmdError::Failed(format!(
                    "waiting for `{shown}` failed: {e}"
                )))
            }
        }
        if let Some(sig) = crate::signals::pending() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(CmdError::Interrupted(sig));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // A Ctrl-C at the terminal reaches the child too, which then fails: report the signal, not
    // the child's failure, so the caller tears down instead of skipping this filesystem.
    if let Some(sig) = crate::signals::pending() {
        return Err(CmdError::Interrupted(sig));
    }
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if status.success() {
        Ok(stdout)
    } else {
        let stderr = stderr.trim();
        let stderr = if stderr.is_empty() {
            "(no stderr)"
        } else {
            stderr
        };
        Err(CmdError::Failed(format!(
            "`{shown}` failed ({status}): {stderr}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_with_optional_fields_and_escapes() {
        let line =
            r"36 35 98:0 / /tmp/a\040b rw,noatime master:1 - ext4 /dev/loop3 rw,errors=continue";
        let m = parse_mountinfo_line(line).expect("a valid mountinfo line");
        assert_eq!(m.mountpoint, PathBuf::from("/tmp/a b"));
        assert_eq!(m.fstype, "ext4");
        assert_eq!(m.source, "/dev/loop3");
        assert_eq!(m.options(), "rw,noatime,errors=continue");
    }

    #[test]
    fn a_line_without_separator_is_not_a_mount() {
        assert!(parse_mountinfo_line("garbage").is_none());
    }
}
