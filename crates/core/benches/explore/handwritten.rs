//! The same race written directly against shuttle's primitives, as one would by hand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use shuttle::scheduler::{RandomScheduler, Scheduler};
use shuttle::sync::{Condvar, Mutex, MutexGuard};

const LOCKFILE: &str = "/var/lib/mailman/locks/test.lock";
const HOST: &str = "mail";
const LIFETIME: i64 = 15_000; // ms
const CLOCK_SLOP: i64 = 10_000;
const NAP: i64 = 1_000;
const WORK: i64 = 3_000;
/// 2004-10-24 08:00 UTC, as racelab's model: -1 ("no lock file") reads as the distant past.
const EPOCH_MS: i64 = 1_098_604_800_000;
const QRUNNERS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
enum Errno {
    ENOENT,
    EEXIST,
}

struct Inode {
    nlink: i64,
    mtime: i64,
    contents: String,
}

/// Just enough of a POSIX filesystem: names, hard links, mtimes. Everything lives in the one
/// lock directory, which always exists.
#[derive(Default)]
struct Fs {
    names: HashMap<String, usize>,
    inodes: Vec<Inode>,
}

impl Fs {
    fn write(&mut self, path: &str, data: &str, now: i64) {
        match self.names.get(path) {
            Some(&ino) => {
                let n = &mut self.inodes[ino];
                n.contents = data.to_string();
                n.mtime = now;
            }
            None => {
                self.inodes.push(Inode {
                    nlink: 1,
                    mtime: now,
                    contents: data.to_string(),
                });
                self.names.insert(path.to_string(), self.inodes.len() - 1);
            }
        }
    }
    fn utime(&mut self, path: &str, t: i64) -> Result<(), Errno> {
        let ino = *self.names.get(path).ok_or(Errno::ENOENT)?;
        self.inodes[ino].mtime = t;
        Ok(())
    }
    fn link(&mut self, from: &str, to: &str) -> Result<(), Errno> {
        let ino = *self.names.get(from).ok_or(Errno::ENOENT)?;
        if self.names.contains_key(to) {
            return Err(Errno::EEXIST);
        }
        self.inodes[ino].nlink += 1;
        self.names.insert(to.to_string(), ino);
        Ok(())
    }
    /// (st_nlink, st_mtime)
    fn stat(&self, path: &str) -> Result<(i64, i64), Errno> {
        let n = &self.inodes[*self.names.get(path).ok_or(Errno::ENOENT)?];
        Ok((n.nlink, n.mtime))
    }
    fn read(&self, path: &str) -> Result<String, Errno> {
        Ok(self.inodes[*self.names.get(path).ok_or(Errno::ENOENT)?]
            .contents
            .clone())
    }
    fn unlink(&mut self, path: &str) -> Result<(), Errno> {
        let ino = self.names.remove(path).ok_or(Errno::ENOENT)?;
        self.inodes[ino].nlink -= 1;
        Ok(())
    }
}

struct World {
    fs: Fs,
    /// Virtual time in ms; moves only when no qrunner is runnable.
    clock: i64,
    /// `Some(t)`: asleep (in `sleep` or `work`) until `t`.
    wake_at: [Option<i64>; QRUNNERS],
    done: [bool; QRUNNERS],
    in_critical: usize,
    locks_log: Vec<String>,
    two_in_critical: bool,
    errors: Vec<&'static str>,
    /// Lock acquisitions of the world, for comparing step counts with racelab.
    ops: u64,
}

struct Shared {
    world: Mutex<World>,
    /// One per qrunner: a wake-up goes to exactly the sleeper it is for.
    wake: [Condvar; QRUNNERS],
}

impl Shared {
    /// One operation on the shared world: one lock acquisition, one scheduling point.
    fn op<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let mut w = self.world.lock().unwrap();
        w.ops += 1;
        f(&mut w)
    }

    /// `time.time()`
    fn now(&self) -> i64 {
        self.op(|w| w.clock)
    }

    fn log(&self, entry: String) {
        self.op(|w| w.locks_log.push(entry));
    }

    /// `time.sleep(d)` in virtual time.
    fn sleep(&self, me: usize, d: i64) {
        let mut w = self.world.lock().unwrap();
        w.ops += 1;
        drop(self.block(w, me, d));
    }

    /// The critical section: `d` ms of work on the list while holding it.
    fn work(&self, me: usize, d: i64) {
        let mut w = self.world.lock().unwrap();
        w.ops += 1;
        w.in_critical += 1;
        if w.in_critical > 1 {
            w.two_in_critical = true;
        }
        let mut w = self.block(w, me, d);
        w.in_critical -= 1;
    }

    fn finish(&self, me: usize, result: Result<(), &'static str>) {
        let mut w = self.world.lock().unwrap();
        w.ops += 1;
        if let Err(e) = result {
            w.errors.push(e);
        }
        w.done[me] = true;
        self.advance_clock(&mut w);
    }

    fn block<'a>(&self, mut w: MutexGuard<'a, World>, me: usize, d: i64) -> MutexGuard<'a, World> {
        w.wake_at[me] = Some(w.clock + d);
        self.advance_clock(&mut w);
        while w.wake_at[me].is_some() {
            w = self.wake[me].wait(w).unwrap();
        }
        w
    }

    /// Discrete-event time: when every qrunner is asleep or done, jump to the earliest
    /// wake-up and wake everyone due then.
    fn advance_clock(&self, w: &mut World) {
        let runnable = (0..QRUNNERS).any(|i| !w.done[i] && w.wake_at[i].is_none());
        if runnable {
            return;
        }
        let Some(t) = w.wake_at.iter().flatten().copied().min() else {
            return;
        };
        w.clock = w.clock.max(t);
        for i in 0..QRUNNERS {
            if w.wake_at[i].is_some_and(|at| at <= w.clock) {
                w.wake_at[i] = None;
                self.wake[i].notify_one();
            }
        }
    }
}

// Mailman/LockFile.py, one world operation per filesystem call, as in the scenario.

fn touch(sh: &Shared, path: &str) {
    let t = sh.now() + LIFETIME;
    let _ = sh.op(|w| w.fs.utime(path, t)); // ENOENT is ignored
}

fn read_lock(sh: &Shared) -> Option<String> {
    sh.op(|w| w.fs.read(LOCKFILE)).ok()
}

fn linkcount(sh: &Shared) -> i64 {
    sh.op(|w| w.fs.stat(LOCKFILE))
        .map_or(-1, |(nlink, _)| nlink)
}

fn releasetime(sh: &Shared) -> i64 {
    sh.op(|w| w.fs.stat(LOCKFILE))
        .map_or(-1, |(_, mtime)| mtime)
}

fn break_lock(sh: &Shared) {
    let t = sh.now() + LIFETIME;
    let _ = sh.op(|w| w.fs.utime(LOCKFILE, t));
    let winner = read_lock(sh);
    let _ = sh.op(|w| w.fs.unlink(LOCKFILE));
    if let Some(winner) = winner {
        let _ = sh.op(|w| w.fs.unlink(&winner));
    }
}

fn lock(sh: &Shared, me: usize, tmp: &str, patched: bool) -> Result<(), &'static str> {
    sh.op(|w| {
        let now = w.clock;
        w.fs.write(tmp, tmp, now)
    });
    touch(sh, tmp);
    loop {
        match sh.op(|w| w.fs.link(tmp, LOCKFILE)) {
            Ok(()) => {
                touch(sh, tmp);
                return Ok(());
            }
            Err(Errno::ENOENT) => {}
            Err(Errno::EEXIST) if patched => {
                let count = linkcount(sh);
                if count == -1 {
                    continue;
                }
                if count != 2 {
                    sh.log(format!("unexpected linkcount: {count}"));
                } else if read_lock(sh).as_deref() == Some(tmp) {
                    return Err("AlreadyLockedError");
                }
            }
            Err(Errno::EEXIST) => {
                if linkcount(sh) != 2 {
                    let count = linkcount(sh);
                    sh.log(format!("unexpected linkcount: {count}"));
                } else if read_lock(sh).as_deref() == Some(tmp) {
                    return Err("AlreadyLockedError");
                }
            }
        }
        let expired = if patched {
            let release = releasetime(sh);
            if release == -1 {
                continue;
            }
            sh.now() > release + CLOCK_SLOP
        } else {
            let now = sh.now();
            now > releasetime(sh) + CLOCK_SLOP
        };
        if expired {
            break_lock(sh);
            sh.log("lifetime has expired, breaking".to_string());
        }
        sh.sleep(me, NAP);
    }
}

fn locked(sh: &Shared, tmp: &str) -> bool {
    touch(sh, tmp);
    if linkcount(sh) != 2 {
        return false;
    }
    read_lock(sh).as_deref() == Some(tmp)
}

fn unlock(sh: &Shared, tmp: &str) -> Result<(), &'static str> {
    if !locked(sh, tmp) {
        return Err("NotLockedError");
    }
    let _ = sh.op(|w| w.fs.unlink(LOCKFILE));
    let _ = sh.op(|w| w.fs.unlink(tmp));
    Ok(())
}

fn qrunner(sh: &Shared, me: usize, patched: bool) {
    let tmp = format!("{LOCKFILE}.{HOST}.qrunner{}.0", me + 1);
    let result = lock(sh, me, &tmp, patched).and_then(|()| {
        sh.work(me, WORK);
        unlock(sh, &tmp)
    });
    sh.finish(me, result);
}

/// What `explore` saw over all its schedules.
#[derive(Debug, Default)]
pub struct Outcome {
    pub schedules: AtomicU64,
    pub mutual_exclusion: AtomicU64,
    pub spurious_log: AtomicU64,
    pub errors: AtomicU64,
    pub ops: AtomicU64,
}

/// Explores `n` random schedules of three qrunners under shuttle.
pub fn explore(n: u64, seed: u64, patched: bool) -> Arc<Outcome> {
    explore_with(RandomScheduler::new_from_seed(seed, n as usize), patched)
}

pub fn explore_with(scheduler: impl Scheduler + 'static, patched: bool) -> Arc<Outcome> {
    let outcome = Arc::new(Outcome::default());
    let out = Arc::clone(&outcome);
    let mut config = shuttle::Config::new();
    config.silence_warnings = true;
    config.max_steps = shuttle::MaxSteps::None;
    let runner = shuttle::Runner::new(scheduler, config);
    runner.run(move || {
        let world = World {
            fs: Fs::default(),
            clock: EPOCH_MS,
            wake_at: [None; QRUNNERS],
            done: [false; QRUNNERS],
            in_critical: 0,
            locks_log: Vec::new(),
            two_in_critical: false,
            errors: Vec::new(),
            ops: 0,
        };
        let sh = Arc::new(Shared {
            world: Mutex::new(world),
            wake: std::array::from_fn(|_| Condvar::new()),
        });
        // As racelab does, qrunner 0 runs on the test's main thread.
        let others: Vec<_> = (1..QRUNNERS)
            .map(|me| {
                let sh = Arc::clone(&sh);
                shuttle::thread::spawn(move || qrunner(&sh, me, patched))
            })
            .collect();
        qrunner(&sh, 0, patched);
        for h in others {
            h.join().unwrap();
        }
        let w = sh.world.lock().unwrap();
        out.schedules.fetch_add(1, Ordering::Relaxed);
        out.ops.fetch_add(w.ops, Ordering::Relaxed);
        out.mutual_exclusion
            .fetch_add(u64::from(w.two_in_critical), Ordering::Relaxed);
        out.spurious_log
            .fetch_add(u64::from(!w.locks_log.is_empty()), Ordering::Relaxed);
        out.errors
            .fetch_add(u64::from(!w.errors.is_empty()), Ordering::Relaxed);
    });
    outcome
}
