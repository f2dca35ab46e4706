//! The rig directory: its checks, its lock, and what it caches (the unpacked `user-mode-linux` package), installed from Debian's packages when missing.

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
];

/// A checked rig directory.
pub(crate) struct Rig {
    pub dir: PathBuf,
}

/// The unpacked kernel. Its modules are found by the init script as `$RIG/mods`.
pub(crate) struct Kernel {
    pub binary: PathBuf,
    pub version: String,
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
        if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "/._-".contains(*c))) {
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
        let meta = std::fs::symlink_metadata(dir).map_err(|e| bad(format!("cannot inspect it: {e}")))?;
        if !meta.is_dir() {
            return Err(bad("is not a directory (a symlink or a file is refused: pass a directory you own with --rig)".into()));
        }
        if meta.uid() != 0 {
            return Err(bad(format!("is owned by uid {}, not root; remove it or pass another --rig", meta.uid())));
        }
        Ok(Rig { dir: dir.to_path_buf() })
    }

    /// Takes the rig's lock, waiting (and saying so) while another run holds it. Two runs on one
    /// rig would overwrite each other's command file and remove each other's mount points.
    pub fn lock(&self) -> Result<Flock<File>, Error> {
        let path = self.dir.join("lock");
        let mut said = false;
        loop {
            let file = File::options().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::Io(format!("opening {}: {e}", path.display())))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(lock),
                Err((_, Errno::EWOULDBLOCK)) => {
                    if !said {
                        eprintln!("nfs: waiting for another `cargo xtask nfs run` on rig {} (use --rig DIR to run beside it)", self.dir.display());
                        said = true;
                    }
                    if crate::signals::pending().is_some() {
                        return Err(Error::Io("interrupted while waiting for the rig's lock".into()));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err((_, e)) => return Err(Error::Io(format!("locking {}: {e}", path.display()))),
            }
        }
    }

    /// Installs what is missing: the host's NFS tools (apt-get install) and the UML kernel
    /// (apt-get download + dpkg -x into the rig, cached for later runs).
    pub fn ensure_installed(&self) -> Result<Kernel, Error> {
        let missing: Vec<&str> = TOOLS.iter().filter(|(p, _)| !Path::new(p).exists()).map(|(_, pkg)| *pkg).collect();
        if !missing.is_empty() {
            let mut pkgs: Vec<&str> = vec!["nfs-kernel-server", "kmod"];
            pkgs.extend(missing.iter().filter(|p| !pkgs.contains(p)).collect::<Vec<_>>());
            let t = Instant::now();
            eprintln!("nfs: installing {} (apt-get)", pkgs.join(" "));
            apt(&["update", "-qq"])?;
            let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
            args.extend(&pkgs);
            apt(&args)?;
            eprintln!("nfs: installed in {:.1}s", t.elapsed().as_secs_f64());
            if let Some((p, pkg)) = TOOLS.iter().find(|(p, _)| !Path::new(p).exists()) {
                return Err(Error::Setup(format!("{p} is still missing after installing {pkg}; install it by hand (apt-get install {pkg})")));
            }
        }
        if let Some(k) = self.kernel() {
            return Ok(k);
        }
        self.install_uml()?;
        self.kernel().ok_or_else(|| Error::Setup(format!("the unpacked user-mode-linux package in {} has no usr/bin/linux.uml or no usr/lib/uml/modules/VERSION; remove {} and run again", self.dir.display(), self.dir.join("uml").display())))
    }

    /// The cached kernel, when the package is unpacked and the modules link is in place.
    fn kernel(&self) -> Option<Kernel> {
        let binary = self.dir.join("uml/usr/bin/linux.uml");
        let version = std::fs::read_dir(self.dir.join("uml/usr/lib/uml/modules")).ok()?.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).next()?;
        // `modprobe -d DIR` looks in DIR/lib/modules/VERSION; the package has them elsewhere.
        let modules = self.dir.join("mods");
        let link = modules.join("lib/modules").join(&version);
        if !link.exists() {
            std::fs::create_dir_all(modules.join("lib/modules")).ok()?;
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(self.dir.join("uml/usr/lib/uml/modules").join(&version), &link).ok()?;
        }
        binary.is_file().then_some(Kernel { binary, version })
    }

    /// Downloads and unpacks `user-mode-linux` into `uml/`. The unpacked tree only gets its
    /// final name once complete, so an interrupted install is redone, never half used.
    fn install_uml(&self) -> Result<(), Error> {
        let t = Instant::now();
        eprintln!("nfs: fetching Debian's user-mode-linux package into {} (once; later runs reuse it)", self.dir.display());
        let download = self.dir.join("download");
        let partial = self.dir.join("uml.partial");
        let _ = std::fs::remove_dir_all(&download);
        let _ = std::fs::remove_dir_all(&partial);
        std::fs::create_dir_all(&download).map_err(|e| Error::Setup(format!("creating {}: {e}", download.display())))?;
        // The sandbox user `_apt` cannot write a root-owned directory; we are root already.
        let get = |d: &Path| run_tool(Command::new("apt-get").args(["-o", "APT::Sandbox::User=root", "download", "-qq", "user-mode-linux"]).current_dir(d), "apt-get download user-mode-linux");
        if get(&download).is_err() {
            // A fresh machine may have no package lists yet.
            apt(&["update", "-qq"])?;
            get(&download)?;
        }
        let deb = std::fs::read_dir(&download)
            .map_err(|e| Error::Setup(format!("reading {}: {e}", download.display())))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "deb"))
            .ok_or_else(|| Error::Setup(format!("apt-get download left no .deb in {}", download.display())))?;
        run_tool(Command::new("dpkg").arg("-x").arg(&deb).arg(&partial), "dpkg -x user-mode-linux")?;
        let target = self.dir.join("uml");
        let _ = std::fs::remove_dir_all(&target);
        std::fs::rename(&partial, &target).map_err(|e| Error::Setup(format!("renaming {} to {}: {e}", partial.display(), target.display())))?;
        // The unpacked tree is the cache; the .deb is not needed again.
        let _ = std::fs::remove_dir_all(&download);
        eprintln!("nfs: user-mode-linux unpacked in {:.1}s", t.elapsed().as_secs_f64());
        Ok(())
    }
}

fn apt(args: &[&str]) -> Result<(), Error> {
    let mut cmd = Command::new("apt-get");
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    run_tool(&mut cmd, &format!("apt-get {}", args.join(" ")))
}

/// Runs a set-up tool quietly; its output becomes the error when it fails.
fn run_tool(cmd: &mut Command, what: &str) -> Result<(), Error> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| Error::Setup(format!("{what}: cannot start it: {e} (is this Debian with apt-get and dpkg?)")))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let text = if text.trim().is_empty() { String::from_utf8_lossy(&out.stdout) } else { text };
    Err(Error::Setup(format!("{what} failed ({}): {}", out.status, text.trim())))
}
