//! What a real filesystem is: its type (from the statfs magic) and mount options (from mountinfo).

use std::path::Path;

/// The facts a report records about the filesystem a real run used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsInfo {
    /// `tmpfs`, `ext4`, `xfs`, `btrfs`, `overlay`, `nfs`, … or `unknown (0x…)`.
    pub fs_type: String,
    /// The mount point the directory lives under.
    pub mount_point: String,
    /// The mount options, as in /proc/self/mountinfo (per-mount, then per-superblock).
    pub options: String,
}

/// statfs `f_type` magic numbers (linux/magic.h) for the filesystems racelab runs on.
const MAGICS: &[(i64, &str)] = &[
    (0x0102_1994, "tmpfs"),
    (0xEF53, "ext4"),
    (0x5846_5342, "xfs"),
    (0x9123_683E, "btrfs"),
    (0x794C_7630, "overlay"),
    (0x6969, "nfs"),
    (0x6573_5546, "fuse"),
    (0x8584_58f6, "ramfs"),
    (0x0102_1997, "9p"),
];

/// Reads the type and mount options of the filesystem holding `dir`.
pub fn fs_info(dir: &Path) -> std::io::Result<FsInfo> {
    let st = nix::sys::statfs::statfs(dir).map_err(std::io::Error::from)?;
    let magic = st.filesystem_type().0 as i64;
    let fs_type = MAGICS
        .iter()
        .find(|(m, _)| *m == magic)
        .map_or_else(|| format!("unknown ({magic:#x})"), |(_, n)| n.to_string());
    let canonical = std::fs::canonicalize(dir)?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let (mount_point, options) = mount_of(&mountinfo, &canonical.to_string_lossy())
        .unwrap_or_else(|| ("?".into(), "?".into()));
    // NFS's magic is the same for every version; the mount options say which one.
    let fs_type = if fs_type == "nfs" {
        nfs_version(&options).unwrap_or(fs_type)
    } else {
        fs_type
    };
    Ok(FsInfo {
        fs_type,
        mount_point,
        options,
    })
}

/// `nfs3` or `nfs4` from mount options holding `vers=3` / `vers=4.2`.
fn nfs_version(options: &str) -> Option<String> {
    let vers = options
        .split([',', ' '])
        .find_map(|o| o.strip_prefix("vers="))?;
    Some(format!("nfs{}", vers.split('.').next().unwrap_or(vers)))
}

/// The longest mount point in `mountinfo` that contains `path`, and its options.
fn mount_of(mountinfo: &str, path: &str) -> Option<(String, String)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // id parent major:minor root mount-point options [optional...] - type source super-options
            let fields: Vec<&str> = line.split(' ').collect();
            let mount_point = unescape(fields.get(4)?);
            let options = fields.get(5)?;
            let dash = fields.iter().position(|f| *f == "-")?;
            let super_options = fields.get(dash + 3).copied().unwrap_or("");
            let inside = path == mount_point
                || mount_point == "/"
                || path.starts_with(&format!("{mount_point}/"));
            inside.then(|| {
                (
                    mount_point,
                    format!("{options} {super_options}").trim().to_string(),
                )
            })
        })
        .max_by_key(|(m, _)| m.len())
}

/// mountinfo escapes spaces, tabs, newlines and backslashes as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_containing_mount_point_wins() {
        let mi = "22 1 0:21 / / rw,relatime - ext4 /dev/sda1 rw\n\
                  40 22 0:35 / /tmp rw,nosuid - tmpfs tmpfs rw,size=100k\n\
                  41 40 7:0 / /tmp/x\\040y rw - xfs /dev/loop0 rw,attr2\n";
        assert_eq!(
            mount_of(mi, "/tmp/a"),
            Some(("/tmp".into(), "rw,nosuid rw,size=100k".into()))
        );
        assert_eq!(
            mount_of(mi, "/tmp/x y/z"),
            Some(("/tmp/x y".into(), "rw rw,attr2".into()))
        );
        assert_eq!(
            mount_of(mi, "/home"),
            Some(("/".into(), "rw,relatime rw".into()))
        );
        assert_eq!(
            mount_of(mi, "/tmpfoo"),
            Some(("/".into(), "rw,relatime rw".into()))
        );
    }

    #[test]
    fn nfs_versions_come_from_the_mount_options() {
        assert_eq!(
            nfs_version("rw,relatime rw,vers=3,rsize=131072,hard").as_deref(),
            Some("nfs3")
        );
        assert_eq!(
            nfs_version("rw rw,vers=4.2,rsize=131072").as_deref(),
            Some("nfs4")
        );
        assert_eq!(nfs_version("rw,relatime"), None);
    }

    #[test]
    fn this_machines_temp_dir_has_a_known_type() {
        let dir = tempfile::tempdir().expect("temp dir");
        let info = fs_info(dir.path()).expect("statfs works");
        assert!(
            !info.fs_type.is_empty() && info.mount_point.starts_with('/'),
            "{info:?}"
        );
    }
}
