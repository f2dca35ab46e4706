//! The fallback guest: full-system qemu with software emulation (TCG, one vCPU), Debian 12's kernel, a busybox initramfs, and the host's root shared over 9p/virtio.
//!
//! It runs on any x86_64 host: no KVM (this machine kind's /dev/kvm rejects unmodified guests
//! with `failed to set MSR 0x10a` or an emulation failure on `lock cmpxchg16b`) and no
//! dependence on the host CPU's FP-state size. One vCPU, because two are about 5x slower on a
//! two-core host (the vCPU threads contend with each other and with the host).
//!
//! To give the command the same world as in User-mode Linux (the host's files at the same
//! paths, the host's binaries), the initramfs's first stage loads the virtio and 9p modules,
//! mounts the host's `/` over 9p at `/host`, puts the guest's devtmpfs on its `/dev`, and
//! `chroot`s into it to run the rig's `init` — the same init script as UML's. Every mount is in
//! the guest kernel; qemu serves the host's files as root (`security_model=passthrough`).
//!
//! The 9p mount uses `cache=loose`: the guest keeps the host's file data, names and attributes
//! in its own caches instead of asking qemu's 9p server on every lookup. Under TCG each such
//! round trip is emulated, and every exec (a racelab worker per actor, started again after
//! each killed one) made dozens of them: measured in the guest at a load of 8-9 on this
//! host's two cores, 10 forced replays of mailman-2.1 on nfs3 took 4.1 s instead of 6.7 s,
//! 10 stress runs 4.9 s instead of 9.5 s, and the whole NFS part 443 s instead of 671 s. The
//! guest does not see host changes made during its run (loose means no coherence), which is
//! safe here: what it reads (racelab, the scenarios, the findings file) is written before it
//! boots, and its own writes go through to the host (9p writes are write-through in Linux
//! 6.1; the init also syncs before reporting the exit status).
//!
//! The rig caches `qemu/`: the unpacked kernel package (indexed with depmod, so the init's
//! `modprobe -d` finds nfsd and the NFS client), busybox-static, and the initramfs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::cpio::Archive;
use super::machine::Machine;
use super::setup::{self, Rig};
use super::Error;

const CACHE: &str = "qemu";

/// The host tool this guest needs: qemu itself (installed on the host like the NFS tools).
const TOOLS: &[(&str, &str)] = &[("/usr/bin/qemu-system-x86_64", "qemu-system-x86")];

/// Modules the first stage loads to reach the host's files (dependencies included by modprobe).
const FIRST_STAGE_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p"];

/// The initramfs's `/init`: load the 9p modules, mount the host's root, chroot into it and run
/// the rig's init (named on the kernel command line). Failures print the marker the runner
/// reads and power off.
const FIRST_STAGE: &str = r#"#!/bin/busybox sh
# racelab NFS guest, first stage (qemu initramfs; built by xtask/src/nfs/qemu.rs).
/bin/busybox --install -s /bin
fail() { echo "racelab-nfs-setup-failed: $*"; poweroff -f; }
mount -t proc proc /proc || fail "mount /proc in the initramfs"
INIT=$(sed -n 's/.*racelab_init=\([^ ]*\).*/\1/p' /proc/cmdline)
for m in $(cat /modules.list); do insmod "/modules/$m" || fail "insmod $m"; done
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose hostroot /host || fail "mount the host's root over 9p"
umount /proc
mount -t devtmpfs dev /host/dev || fail "devtmpfs on /host/dev"
exec chroot /host /bin/sh "$INIT"
"#;

/// The guest for `rig`, installing qemu and the rig's kernel cache first if needed.
pub(crate) fn machine(rig: &Rig, memory: &str) -> Result<Machine, Error> {
    setup::ensure_host_packages(TOOLS)?;
    let cache = rig.dir.join(CACHE);
    let version = match std::fs::read_to_string(cache.join("kernel-version")) {
        Ok(v) if cache.join("initrd.cpio").is_file() => v.trim().to_string(),
        _ => install(rig, &cache)?,
    };
    refresh_initramfs(&cache, &version)?;
    let append = format!(
        "console=ttyS0 quiet panic=-1 racelab_init={}",
        rig.dir.join("init").display()
    );
    let kernel_root = cache.join("kernel");
    let args: Vec<OsString> = [
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-smp",
        "1",
        "-m",
        memory,
        // The serial console on stdio, no display, no network (NFS runs over the guest's loopback).
        "-nographic",
        "-nic",
        "none",
        // Power-off and panics end qemu instead of rebooting the guest.
        "-no-reboot",
    ]
    .into_iter()
    .map(OsString::from)
    .chain([
        "-kernel".into(),
        kernel_root
            .join(format!("boot/vmlinuz-{version}"))
            .into_os_string(),
        "-initrd".into(),
        cache.join("initrd.cpio").into_os_string(),
        "-append".into(),
        append.into(),
        // multidevs=remap: the host's / spans several filesystems; keep their inode numbers apart.
        "-virtfs".into(),
        "local,path=/,mount_tag=hostroot,security_model=passthrough,multidevs=remap,id=hostroot"
            .into(),
    ])
    .collect();
    Ok(Machine {
        name: "qemu",
        title: format!(
            "Linux {version} (Debian 12 kernel) in qemu with TCG, one vCPU, host root over 9p"
        ),
        program: PathBuf::from(TOOLS[0].0),
        args,
        modules: kernel_root,
    })
}

/// Rebuilds the cached initramfs from the cached kernel and busybox when it was built from
/// another [`FIRST_STAGE`] (a rig cached by an older racelab): the first stage is baked into
/// the initramfs, so a change to it (its 9p mount options) would otherwise never reach a rig
/// that already has one. `initrd.stamp` names the first stage it was built from.
fn refresh_initramfs(cache: &Path, version: &str) -> Result<(), Error> {
    let stamp = cache.join("initrd.stamp");
    let want = first_stage_stamp();
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == want) {
        return Ok(());
    }
    let initrd = initramfs(cache, &cache.join("kernel"), version)?;
    let partial = cache.join("initrd.cpio.partial");
    std::fs::write(&partial, initrd)
        .and_then(|()| std::fs::rename(&partial, cache.join("initrd.cpio")))
        .and_then(|()| std::fs::write(&stamp, format!("{want}\n")))
        .map_err(|e| {
            Error::Setup(format!(
                "rebuilding the initramfs in {}: {e}",
                cache.display()
            ))
        })
}

/// A fingerprint of the first stage and its modules (FNV-1a: stable across builds and hosts).
fn first_stage_stamp() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in FIRST_STAGE
        .bytes()
        .chain(FIRST_STAGE_MODULES.join(",").bytes())
    {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Downloads Debian 12's kernel and busybox-static with the host's apt, unpacks them into
/// `qemu.partial/`, indexes the modules, builds the initramfs, then renames the tree to `qemu/`.
/// Returns the kernel version.
fn install(rig: &Rig, cache: &Path) -> Result<String, Error> {
    let t = Instant::now();
    let package = kernel_package()?;
    let version = package.trim_start_matches("linux-image-").to_string();
    eprintln!(
        "nfs: fetching Debian's {package} and busybox-static into {} (once; later runs reuse it)",
        cache.display()
    );
    let partial = rig.dir.join(format!("{CACHE}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let debs = partial.join("debs");
    std::fs::create_dir_all(&debs)
        .map_err(|e| Error::Setup(format!("creating {}: {e}", debs.display())))?;
    setup::host_download(&debs, &[&package, "busybox-static"])?;
    let kernel_root = partial.join("kernel");
    setup::unpack(&setup::find_deb(&debs, &package)?, &kernel_root)?;
    setup::unpack(
        &setup::find_deb(&debs, "busybox-static")?,
        &partial.join("busybox"),
    )?;
    // The package's postinst would run depmod; modprobe -d needs its index.
    setup::run_tool(
        Command::new("depmod")
            .arg("-b")
            .arg(&kernel_root)
            .arg(&version),
        "depmod for the guest kernel",
    )?;
    let initrd = initramfs(&partial, &kernel_root, &version)?;
    std::fs::write(partial.join("initrd.cpio"), initrd)
        .map_err(|e| Error::Setup(format!("writing the initramfs: {e}")))?;
    std::fs::write(partial.join("kernel-version"), format!("{version}\n"))
        .map_err(|e| Error::Setup(format!("writing kernel-version: {e}")))?;
    std::fs::write(
        partial.join("initrd.stamp"),
        format!("{}\n", first_stage_stamp()),
    )
    .map_err(|e| Error::Setup(format!("writing initrd.stamp: {e}")))?;
    let _ = std::fs::remove_dir_all(&debs);
    setup::commit(&partial, cache)?;
    eprintln!(
        "nfs: kernel {version} and initramfs ready in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    Ok(version)
}

/// The kernel package `linux-image-amd64` points at (e.g. linux-image-6.1.0-57-amd64).
fn kernel_package() -> Result<String, Error> {
    let ask = || {
        Command::new("apt-cache")
            .args(["depends", "linux-image-amd64"])
            .output()
    };
    let parse = |out: &[u8]| {
        String::from_utf8_lossy(out).lines().find_map(|l| {
            l.trim()
                .strip_prefix("Depends: ")
                .filter(|p| {
                    p.starts_with("linux-image-")
                        && p.as_bytes().get(12).is_some_and(u8::is_ascii_digit)
                })
                .map(str::to_string)
        })
    };
    if let Ok(out) = ask() {
        if let Some(p) = parse(&out.stdout) {
            return Ok(p);
        }
    }
    // A fresh machine may have no package lists yet.
    setup::apt(&["update", "-qq"])?;
    let out =
        ask().map_err(|e| Error::Setup(format!("apt-cache depends linux-image-amd64: {e}")))?;
    parse(&out.stdout).ok_or_else(|| {
        Error::Setup("apt-cache depends linux-image-amd64 names no kernel package".into())
    })
}

/// The initramfs: static busybox, `/dev/console`, the first-stage init, and the modules it
/// loads, in dependency order (modprobe --show-depends against the unpacked kernel).
fn initramfs(partial: &Path, kernel_root: &Path, version: &str) -> Result<Vec<u8>, Error> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| Error::Setup(format!("reading {}: {e}", p.display())))
    };
    let mut a = Archive::default();
    for d in ["bin", "dev", "proc", "host", "modules"] {
        a.dir(d);
    }
    a.char_device("dev/console", 5, 1);
    a.file(
        "bin/busybox",
        0o755,
        &read(&partial.join("busybox/bin/busybox"))?,
    );
    a.file("init", 0o755, FIRST_STAGE.as_bytes());
    let mut order: Vec<PathBuf> = Vec::new();
    for m in FIRST_STAGE_MODULES {
        let out = Command::new("modprobe")
            .arg("-d")
            .arg(kernel_root)
            .args(["-S", version, "--show-depends", m])
            .output()
            .map_err(|e| Error::Setup(format!("modprobe --show-depends {m}: {e}")))?;
        if !out.status.success() {
            return Err(Error::Setup(format!(
                "modprobe --show-depends {m} for the guest kernel failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "insmod /path/x.ko [params]" or "builtin x" (nothing to load).
            if let Some(path) = line
                .strip_prefix("insmod ")
                .and_then(|r| r.split_whitespace().next())
            {
                let path = PathBuf::from(path);
                if !order.contains(&path) {
                    order.push(path);
                }
            }
        }
    }
    let mut list = String::new();
    for path in &order {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        a.file(&format!("modules/{name}"), 0o644, &read(path)?);
        list.push_str(&name);
        list.push('\n');
    }
    a.file("modules.list", 0o644, list.as_bytes());
    Ok(a.finish())
}
