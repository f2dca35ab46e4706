//! Bringing the matrix up: the matrix root, and each filesystem (image, mkfs, loop device,
//! mount, scenario directory) as logged, crash-testable actions, read back into its entry.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::MsFlags;

use super::state::{Op, STATE_FILE};
use super::{sys, Entry, Error, Kind, Matrix, Step, SCENARIO_DIR, TMPFS_DATA};
use crate::signals;

impl Matrix {
    /// Logs `op`, performs it, logs that it is done (with what `perform` learnt, e.g. a loop device).
    pub(super) fn act(
        &mut self,
        fs: &str,
        op: Op,
        perform: impl FnOnce(&mut Op) -> Result<(), Step>,
    ) -> Result<(), Step> {
        if let Some(sig) = signals::pending() {
            return Err(Step::Interrupted(sig));
        }
        let i = self.log_mut().intend(fs, op.clone()).map_err(Step::Fatal)?;
        self.crash_point(i, true);
        let mut op = op;
        perform(&mut op)?;
        self.crash_point(i, false);
        self.log_mut().done(i, op).map_err(Step::Fatal)
    }

    fn crash_point(&self, action: usize, before: bool) {
        if let Some(c) = self.crash {
            if c.action == action && c.before == before {
                eprintln!(
                    "--crash-at: killing ourselves {} action {action}",
                    if before { "before" } else { "after" }
                );
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
                std::process::abort();
            }
        }
    }

    pub(super) fn mountpoint(&self, kind: Kind) -> PathBuf {
        self.root.join("mnt").join(kind.name())
    }

    pub(super) fn skipped_entry(&self, kind: Kind, reason: String) -> Entry {
        let mountpoint = self.mountpoint(kind);
        Entry {
            name: kind.name().to_string(),
            dir: mountpoint.join(SCENARIO_DIR),
            mountpoint,
            fstype: kind.name().to_string(),
            statfs: String::new(),
            options: String::new(),
            source: String::new(),
            image_bytes: kind.disk().map(|d| d.bytes),
            skipped: Some(reason),
        }
    }

    pub(super) fn bring_up(&mut self, kind: Kind) -> Result<Entry, Step> {
        let name = kind.name();
        let target = self.mountpoint(kind);
        let image_bytes = kind.disk().map(|d| d.bytes);
        match kind.disk() {
            None if kind == Kind::Tmpfs => {
                self.act(
                    name,
                    Op::Mkdir {
                        path: target.clone(),
                    },
                    |_| mkdir(&target),
                )?;
                self.mount(name, "racelab-tmpfs", "tmpfs", &target, TMPFS_DATA)?;
                make_scenario_dir(&target)?;
            }
            None => {
                // overlay: its three layer directories live on a tmpfs of their own, so the upper
                // layer is never on a filesystem overlayfs refuses (e.g. an overlay /tmp in a container).
                let base = self.root.join("overlay");
                self.act(name, Op::Mkdir { path: base.clone() }, |_| mkdir(&base))?;
                self.mount(name, "racelab-overlay-layers", "tmpfs", &base, TMPFS_DATA)?;
                let (lower, upper, work) =
                    (base.join("lower"), base.join("upper"), base.join("work"));
                for d in [&lower, &upper, &work] {
                    mkdir(d)?;
                }
                // The scenario directory is in the lower layer, so the first write into it copies it
                // up: scenarios then meet overlayfs's own behaviour, not just its upper filesystem's.
                make_scenario_dir(&lower)?;
                self.act(
                    name,
                    Op::Mkdir {
                        path: target.clone(),
                    },
                    |_| mkdir(&target),
                )?;
                let data = format!(
                    "lowerdir={},upperdir={},workdir={}",
                    lower.display(),
                    upper.display(),
                    work.display()
                );
                self.mount(name, "racelab-overlay", "overlay", &target, &data)?;
            }
            Some(disk) => {
                // Checked before any action, so a missing tool costs nothing to roll back.
                let Some(tool) = sys::find_tool(disk.tool) else {
                    let shown = std::iter::once(disk.tool)
                        .chain(disk.args.iter().copied())
                        .collect::<Vec<_>>()
                        .join(" ");
                    return Err(Step::Skip(format!(
                        "`{shown} <image>` cannot run: {} not found in PATH or the sbin directories; install it with `apt-get install -y {}`",
                        disk.tool, disk.package
                    )));
                };
                let Some(losetup) = sys::find_tool("losetup") else {
                    return Err(Step::Skip("`losetup --find --show <image>` cannot run: losetup not found; install it with `apt-get install -y mount`".into()));
                };
                let image = self.root.join("img").join(format!("{name}.img"));
                self.act(
                    name,
                    Op::Image {
                        path: image.clone(),
                        bytes: disk.bytes,
                    },
                    |_| make_sparse(&image, disk.bytes),
                )?;
                let mut mkfs = Command::new(&tool);
                mkfs.args(disk.args).arg(&image);
                self.act(
                    name,
                    Op::Mkfs {
                        image: image.clone(),
                        command: sys::display(&mkfs),
                    },
                    |_| sys::run(&mut mkfs).map(drop).map_err(Step::from),
                )?;
                let mut device = PathBuf::new();
                self.act(
                    name,
                    Op::Loop {
                        image: image.clone(),
                        device: None,
                    },
                    |op| {
                        let mut cmd = Command::new(&losetup);
                        cmd.args(["--find", "--show"]).arg(&image);
                        let out = sys::run(&mut cmd)?;
                        device = PathBuf::from(out.trim());
                        if !device.starts_with("/dev") {
                            return Err(Step::Skip(format!(
                                "`{}` printed {out:?}, not a /dev/loopN device",
                                sys::display(&cmd)
                            )));
                        }
                        *op = Op::Loop {
                            image: image.clone(),
                            device: Some(device.clone()),
                        };
                        Ok(())
                    },
                )?;
                self.act(
                    name,
                    Op::Mkdir {
                        path: target.clone(),
                    },
                    |_| mkdir(&target),
                )?;
                self.mount(name, &device.to_string_lossy(), name, &target, "")?;
                make_scenario_dir(&target)?;
            }
        }
        read_back(kind, &target, image_bytes)
    }

    pub(super) fn mount(
        &mut self,
        fs: &str,
        source: &str,
        fstype: &str,
        target: &Path,
        data: &str,
    ) -> Result<(), Step> {
        let op = Op::Mount {
            source: source.to_string(),
            fstype: fstype.to_string(),
            target: target.to_path_buf(),
            data: data.to_string(),
        };
        self.act(fs, op, |_| {
            let data_opt = (!data.is_empty()).then_some(data);
            nix::mount::mount(Some(source), target, Some(fstype), MsFlags::empty(), data_opt).map_err(|e| {
                let o = if data.is_empty() { String::new() } else { format!(" -o {data}") };
                Step::Skip(format!(
                    "mount(2) as in `mount -t {fstype}{o} {source} {}` failed: {e}; the kernel's reason is in `dmesg | tail`",
                    target.display(),
                ))
            })
        })
    }
}

pub(super) fn mkdir(path: &Path) -> Result<(), Step> {
    std::fs::create_dir(path).map_err(|e| {
        Step::Skip(format!(
            "creating the directory {} failed: {e}",
            path.display()
        ))
    })
}

pub(super) fn make_sparse(path: &Path, bytes: u64) -> Result<(), Step> {
    let f = std::fs::File::create_new(path)
        .map_err(|e| Step::Skip(format!("creating the image {} failed: {e}", path.display())))?;
    // set_len on a new file makes a hole: no blocks are allocated until mkfs writes.
    f.set_len(bytes).map_err(|e| {
        Step::Skip(format!(
            "sizing the image {} to {bytes} bytes failed: {e} (is the disk full?)",
            path.display()
        ))
    })
}

/// Makes `<dir>/racelab` writable by anyone: actor processes might not run as root.
pub(super) fn make_scenario_dir(dir: &Path) -> Result<(), Step> {
    let d = dir.join(SCENARIO_DIR);
    mkdir(&d)?;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).map_err(|e| {
        Step::Skip(format!(
            "making {} writable (chmod 0777) failed: {e}",
            d.display()
        ))
    })
}

/// Reads back what the kernel actually mounted, and proves the scenario directory takes a write.
pub(super) fn read_back(
    kind: Kind,
    target: &Path,
    image_bytes: Option<u64>,
) -> Result<Entry, Step> {
    let info = sys::mount_at(target)
        .map_err(|e| Step::Skip(format!("reading /proc/self/mountinfo failed: {e}")))?
        .ok_or_else(|| {
            Step::Skip(format!(
                "{} is not a mount point after mounting it (per /proc/self/mountinfo)",
                target.display()
            ))
        })?;
    if info.fstype != kind.name() {
        return Err(Step::Skip(format!(
            "{} is mounted as {}, not {}",
            target.display(),
            info.fstype,
            kind.name()
        )));
    }
    let statfs = sys::statfs_type(target)
        .map_err(|e| Step::Skip(format!("statfs({}) failed: {e}", target.display())))?;
    let agrees = match kind {
        Kind::Ext4 => statfs == "ext2/ext3/ext4",
        _ => statfs == kind.name(),
    };
    if !agrees {
        return Err(Step::Skip(format!(
            "mountinfo says {} at {} but statfs says {statfs}",
            info.fstype,
            target.display()
        )));
    }
    let dir = target.join(SCENARIO_DIR);
    let probe = dir.join(".racelab-probe");
    std::fs::write(&probe, b"probe")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            Step::Skip(format!(
                "writing a probe file {} failed: {e}",
                probe.display()
            ))
        })?;
    Ok(Entry {
        name: kind.name().to_string(),
        mountpoint: target.to_path_buf(),
        dir,
        fstype: info.fstype.clone(),
        statfs,
        options: info.options(),
        source: info.source.clone(),
        image_bytes,
        skipped: None,
    })
}

/// Creates (or adopts, if new and empty) the matrix root; returns its canonical path and whether we created it.
pub(super) fn make_root(root: Option<&Path>) -> Result<(PathBuf, bool), Error> {
    let Some(root) = root else {
        let dir = tempfile::Builder::new()
            .prefix("racelab-fs-")
            .tempdir()
            .map_err(|e| {
                anyhow::anyhow!(
                    "creating a temp dir under {} failed: {e}",
                    std::env::temp_dir().display()
                )
            })?;
        let path = dir.keep();
        let canonical = std::fs::canonicalize(&path).unwrap_or(path);
        return Ok((canonical, true));
    };
    let created = match std::fs::create_dir(root) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => {
            return Err(Error::BadInput(format!(
                "creating the matrix root {} failed: {e}",
                root.display()
            )))
        }
    };
    let canonical = std::fs::canonicalize(root)
        .map_err(|e| Error::BadInput(format!("resolving {} failed: {e}", root.display())))?;
    let refuse = |msg: String| {
        if created {
            let _ = std::fs::remove_dir(&canonical);
        }
        Err(Error::BadInput(msg))
    };
    if canonical.parent().is_none() || canonical.parent() == Some(Path::new("/")) {
        return refuse(format!("refusing {} as a matrix root: `fs down` deletes the root, so it must be below a top-level directory, e.g. /tmp/racelab-fs", canonical.display()));
    }
    if !created {
        if canonical.join(STATE_FILE).exists() {
            return refuse(format!(
                "a matrix is already at {}; tear it down first with `cargo xtask fs down --root {}`",
                canonical.display(),
                canonical.display()
            ));
        }
        let empty = std::fs::read_dir(&canonical).map(|mut rd| rd.next().is_none());
        match empty {
            Ok(true) => {}
            Ok(false) => {
                return refuse(format!(
                    "{} is not empty; give a new or empty directory as --root",
                    canonical.display()
                ))
            }
            Err(e) => {
                return refuse(format!(
                    "{} is not a readable directory: {e}",
                    canonical.display()
                ))
            }
        }
    }
    Ok((canonical, created))
}
