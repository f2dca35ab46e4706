//! The rig directory (its checks and its lock), the host tools the guests' init runs, and the apt/dpkg helpers the guests' caches are installed with.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::Error;

/// Host tools the guest's init runs (the guest's `/` is the host's), and the package holding each.
const TOOLS: &[(&str, &str)] = &[
    ("/usr/sbin/rpc.nfsd", "nfs-kernel-server"),
    ("/usr/sbin/rpc.mountd", "nfs-kernel-server"),
    ("/usr/sbin/exportfs", "nfs-kernel-server"),
    ("/usr/sbin/nfsdcld", "nfs-kernel-server"),
    ("/usr/sbin/rpc.statd", "nfs-common"),
    ("/usr/sbin/rpcbind", "rpcbind"),
    ("/usr/sbin/modprobe", "kmod"),
    ("/usr/sbin/ip", "iproute2"),
    // Both guests load their kernel's modules from the rig (`modprobe -d`); depmod indexes them.
    ("/usr/sbin/depmod", "kmod"),
];

/// A checked rig directory.
pub(crate) struct Rig {
    pub dir: PathBuf,
}

impl Rig {
    /// Creates the rig directory if needed and checks it is safe to use as root: an absolute
    /// path of plain characters (it appears in /etc/exports syntax and on the kernel command
    /// line), a real directory (not a symlink someone else planted in /tmp) owned by root.
    pub fn open(dir: &Path) -> Result<Rig, Error> {
        let bad = |why: String| Error::BadRig(dir.to_path_buf(), why);
        if !dir.is_absolute() {
            return Err(bad("must be an absolute path".into()));
        }
        let s = dir.to_string_lossy();
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "/._-".contains(*c)))
        {
            return Err(bad(format!("contains {c:?}; use a path of letters, digits and / . _ - only (it is written into /etc/exports and the guest kernel's command line)")));
        }
        match std::fs::symlink_metadata(dir) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create it: {e}")))?;
                let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
            }
            Err(e) => return Err(bad(format!("cannot inspect it: {e}"))),
        }
        let meta =
            std::fs::symlink_metadata(dir).map_err(|e| bad(format!("cannot inspect it: {e}")))?;
        if !meta.is_dir() {
            return Err(bad("is not a directory (a symlink or a file is refused: pass a directory you own with --rig)".into()));
        }
        if meta.uid() != 0 {
            return Err(bad(format!(
                "is owned by uid {}, not root; remove it or pass another --rig",
                meta.uid()
            )));
        }
        Ok(Rig {
            dir: dir.to_path_buf(),
        })
    }

    /// Takes the rig's lock, waiting (and saying so) while another run holds it. Two runs on one
    /// rig would overwrite each other's command file and remove each other's mount points.
    pub fn lock(&self) -> Result<Flock<File>, Error> {
        let path = self.dir.join("lock");
        let mut said = false;
        loop {
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| Error::Io(format!("opening {}: {e}", path.display())))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(lock),
                Err((_, Errno::EWOULDBLOCK)) => {
                    if !said {
                        eprintln!("nfs: waiting for another `cargo xtask nfs run` on rig {} (use --rig DIR to run beside it)", self.dir.display());
                        said = true;
                    }
                    if crate::signals::pending().is_some() {
                        return Err(Error::Io(
                            "interrupted while waiting for the rig's lock".into(),
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err((_, e)) => return Err(Error::Io(format!("locking {}: {e}", path.display()))),
            }
        }
    }

    /// Installs the host tools every guest's init runs (the guest's `/` is the host's) when
    /// any is missing, with the host's own apt configuration.
    pub fn ensure_host_tools(&self) -> Result<(), Error> {
        ensure_host_packages(TOOLS)
    }

    /// Removes what earlier versions of the rig cached (Debian 12's UML 6.1 and its modules
    /// link): it cannot boot on hosts with AVX-512 or AMX, and the cache is 120 MB.
    pub fn drop_stale_cache(&self) {
        for old in ["uml", "mods", "download", "uml.partial"] {
            let _ = std::fs::remove_dir_all(self.dir.join(old));
        }
    }
}

/// Installs the packages of `tools` whose file is missing (apt-get update + install), and checks
/// they are there afterwards.
pub(crate) fn ensure_host_packages(tools: &[(&str, &str)]) -> Result<(), Error> {
    let mut pkgs: Vec<&str> = Vec::new();
    for (path, pkg) in tools {
        if !Path::new(path).exists() && !pkgs.contains(pkg) {
            pkgs.push(pkg);
        }
    }
    if pkgs.is_empty() {
        return Ok(());
    }
    let t = Instant::now();
    eprintln!("nfs: installing {} (apt-get)", pkgs.join(" "));
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&pkgs);
    apt(&args)?;
    eprintln!("nfs: installed in {:.1}s", t.elapsed().as_secs_f64());
    if let Some((p, pkg)) = tools.iter().find(|(p, _)| !Path::new(p).exists()) {
        return Err(Error::Setup(format!("{p} is still missing after installing {pkg}; install it by hand (apt-get install {pkg})")));
    }
    Ok(())
}

/// `apt-get download PACKAGE...` into `dir` with the host's apt configuration (Debian 12's
/// archive), updating the package lists once if the first try fails (a fresh machine has none).
pub(crate) fn host_download(dir: &Path, packages: &[&str]) -> Result<(), Error> {
    let get = || {
        let mut cmd = Command::new("apt-get");
        // The sandbox user `_apt` cannot write a root-owned directory; we are root already.
        cmd.args(["-o", "APT::Sandbox::User=root", "download", "-qq"])
            .args(packages)
            .current_dir(dir);
        run_tool(
            &mut cmd,
            &format!("apt-get download {}", packages.join(" ")),
        )
    };
    if get().is_err() {
        apt(&["update", "-qq"])?;
        get()?;
    }
    Ok(())
}

/// The `.deb` in `dir` whose name starts with `package_`.
pub(crate) fn find_deb(dir: &Path, package: &str) -> Result<PathBuf, Error> {
    let prefix = format!("{package}_");
    std::fs::read_dir(dir)
        .map_err(|e| Error::Setup(format!("reading {}: {e}", dir.display())))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == "deb")
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .ok_or_else(|| {
            Error::Setup(format!(
                "apt-get download left no {package}_*.deb in {}",
                dir.display()
            ))
        })
}

/// `dpkg -x DEB DIR`.
pub(crate) fn unpack(deb: &Path, dir: &Path) -> Result<(), Error> {
    run_tool(
        Command::new("dpkg").arg("-x").arg(deb).arg(dir),
        &format!("dpkg -x {}", deb.display()),
    )
}

/// Moves a completed `partial` tree to its final name: a cache directory only ever exists
/// complete, so an interrupted install is redone, never half used.
pub(crate) fn commit(partial: &Path, target: &Path) -> Result<(), Error> {
    let _ = std::fs::remove_dir_all(target);
    std::fs::rename(partial, target).map_err(|e| {
        Error::Setup(format!(
            "renaming {} to {}: {e}",
            partial.display(),
            target.display()
        ))
    })
}

pub(crate) fn apt(args: &[&str]) -> Result<(), Error> {
    let mut cmd = Command::new("apt-get");
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    run_tool(&mut cmd, &format!("apt-get {}", args.join(" ")))
}

/// Runs a set-up tool quietly; its output becomes the error when it fails.
pub(crate) fn run_tool(cmd: &mut Command, what: &str) -> Result<(), Error> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| {
        Error::Setup(format!(
            "{what}: cannot start it: {e} (is this Debian with apt-get and dpkg?)"
        ))
    })?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let text = if text.trim().is_empty() {
        String::from_utf8_lossy(&out.stdout)
    } else {
        text
    };
    Err(Error::Setup(format!(
        "{what} failed ({}): {}",
        out.status,
        text.trim()
    )))
}
