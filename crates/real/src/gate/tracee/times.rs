//! File times after a step: what a stat shows is the schedule's virtual time, and what a call changed is dated with the virtual clock.

use crate::gate::VirtualClock;

use super::*;

impl Tracee {
    /// After a step: a `stat` shows the file times the schedule gave them; a call that changed
    /// files has the real times it left on them (and on their directory) dated with the clock.
    pub(super) fn date_files(
        &mut self,
        p: &Pending,
        before_ns: i128,
        touched: &[u64],
        clock: &VirtualClock,
    ) -> Result<(), GateError> {
        if matches!(p.op, "stat" | "fstat") {
            if let Some((buf, statx)) = p.stat_buf {
                self.virtualize_stat(buf, statx)?;
            }
            return Ok(());
        }
        use std::os::unix::fs::MetadataExt;
        let mut map = self.times.borrow_mut();
        for ino in touched {
            map.events
                .entry(*ino)
                .or_default()
                .push((before_ns, clock.wall_ns()));
        }
        for path in &p.paths {
            for q in [Some(path.as_path()), path.parent()].into_iter().flatten() {
                let Ok(m) = std::fs::symlink_metadata(q) else {
                    continue;
                };
                let mut stamps = vec![(m.ctime(), m.ctime_nsec())];
                // A utime's mtime is the program's own value, not the machine's.
                if p.op != "utime" || q != path.as_path() {
                    stamps.push((m.mtime(), m.mtime_nsec()));
                }
                for (sec, nsec) in stamps {
                    if sec as i128 * 1_000_000_000 + nsec as i128 >= before_ns {
                        map.stamps.insert((m.ino(), sec, nsec), clock.wall_ns());
                        if !touched.contains(&m.ino()) {
                            map.events
                                .entry(m.ino())
                                .or_default()
                                .push((before_ns, clock.wall_ns()));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Rewrites the access, change, modification (and birth) times of a `struct stat` or
    /// `struct statx` the program just read into virtual times. The struct is read in one
    /// access to the program's memory and the changed span written back in one (field by field
    /// it took up to 13 system calls per `stat` step: the gate's largest share of a step's cost
    /// after the two ptrace stops).
    pub(super) fn virtualize_stat(&self, buf: u64, statx: bool) -> Result<(), GateError> {
        // Up to the last time field: statx's birth time, struct stat's ctime.
        let len = if statx { 0x80 } else { 120 };
        let mut bytes = self.read_mem(buf, len)?;
        if bytes.len() < len {
            return Err(format!(
                "reading the gated process's stat buffer at {buf:#x}: only {} of {len} bytes",
                bytes.len()
            )
            .into());
        }
        if let Some((from, to)) = self.virtualize_bytes(&mut bytes, statx) {
            self.write_mem(buf + from as u64, &bytes[from..to])?;
        }
        Ok(())
    }

    /// Rewrites the times in `bytes`, a `struct stat` or `struct statx`, into virtual times.
    /// Returns the span of bytes it changed.
    pub(super) fn virtualize_bytes(&self, bytes: &mut [u8], statx: bool) -> Option<(usize, usize)> {
        let (ino_at, fields) = stat_layout(statx);
        let word =
            |b: &[u8], at: usize| i64::from_ne_bytes(b[at..at + 8].try_into().unwrap_or_default());
        let ino = word(bytes, ino_at) as u64;
        let map = self.times.borrow();
        let mut changed: Option<(usize, usize)> = None;
        for &(sec_at, nsec_at) in fields {
            let sec = word(bytes, sec_at);
            let nsec = if statx {
                u32::from_ne_bytes(bytes[nsec_at..nsec_at + 4].try_into().unwrap_or_default())
                    as i64
            } else {
                word(bytes, nsec_at)
            };
            let Some(v) = map.virtual_of(ino, sec, nsec) else {
                continue;
            };
            let (vs, vn) = ((v / 1_000_000_000) as i64, (v % 1_000_000_000) as i64);
            bytes[sec_at..sec_at + 8].copy_from_slice(&vs.to_ne_bytes());
            let nsec_end = if statx {
                bytes[nsec_at..nsec_at + 4].copy_from_slice(&(vn as u32).to_ne_bytes());
                nsec_at + 4
            } else {
                bytes[nsec_at..nsec_at + 8].copy_from_slice(&vn.to_ne_bytes());
                nsec_at + 8
            };
            changed = Some(match changed {
                Some((from, _)) => (from, nsec_end),
                None => (sec_at, nsec_end),
            });
        }
        changed
    }
}

/// Where the inode and the (seconds, nanoseconds) of each time are in a `struct statx` or
/// `struct stat` on x86_64 (statx's nanoseconds are a u32, struct stat's an i64).
fn stat_layout(statx: bool) -> (usize, &'static [(usize, usize)]) {
    if statx {
        (
            0x20,
            &[(0x40, 0x48), (0x50, 0x58), (0x60, 0x68), (0x70, 0x78)],
        )
    } else {
        (8, &[(72, 80), (88, 96), (104, 112)])
    }
}

/// File times the gated programs made, as virtual times: `(inode, seconds, nanoseconds)` of a
/// real timestamp a step left on a file, to the virtual wall time (ns) of that step. A program
/// that compares a file's ctime with its clock (npm's lockfile) then sees the times of the
/// schedule, not of the machine.
pub(crate) type FileTimes = std::rc::Rc<std::cell::RefCell<FileTimeMap>>;

#[derive(Debug, Default)]
pub(crate) struct FileTimeMap {
    pub stamps: HashMap<(u64, i64, i64), u64>,
    /// Per inode, the steps that may have changed its times: (real coarse time before the
    /// step, virtual wall time of the step). An unlink of one of an inode's names changes its
    /// ctime, but the name is gone before racelab can read it: such a time is dated by the
    /// last step on the inode that began before it.
    pub events: HashMap<u64, Vec<(i128, u64)>>,
    /// Real time (ns since 1970) when the run's files were made: kernel timestamps from then on
    /// that no step claims (the scenario's `fs` entries) read as the run's start.
    pub since_ns: i128,
    /// The virtual wall clock at the run's start.
    pub start_wall_ns: u64,
}

impl FileTimeMap {
    /// The virtual time a real timestamp stands for, or `None` to leave it (a time the program
    /// set itself with utime, outside the run's real time).
    fn virtual_of(&self, ino: u64, sec: i64, nsec: i64) -> Option<u64> {
        if let Some(v) = self.stamps.get(&(ino, sec, nsec)) {
            return Some(*v);
        }
        let real = sec as i128 * 1_000_000_000 + nsec as i128;
        if let Some(&(_, v)) = self
            .events
            .get(&ino)
            .and_then(|e| e.iter().rev().find(|(before, _)| *before <= real))
        {
            return Some(v);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(0);
        // Kernel timestamps are coarse (a tick behind): a little slack either side.
        (real >= self.since_ns - 50_000_000 && real <= now + 50_000_000)
            .then_some(self.start_wall_ns)
    }
}
