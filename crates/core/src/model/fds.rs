//! Open files in the model: each actor's descriptor table, and flock(2) locks, which belong to
//! an inode through the open file that took them, never to a path.

use std::collections::BTreeMap;

use racelab_lang::ir::Errno;

/// The lowest descriptor number handed out: 0, 1 and 2 are the standard streams.
const FIRST_FD: i64 = 3;

/// Every actor's open descriptors and the flock each inode's lock is held through.
///
/// One descriptor is one open file description here (the language has no dup or fork), so a
/// flock held "by the open file" is held by `(actor, fd)`.
#[derive(Debug, Clone, Default, Hash)]
pub struct OpenFiles {
    /// `(actor, fd)` to the inode the open found (an index into the model's inode table).
    files: BTreeMap<(usize, i64), usize>,
    /// Inode to the `(actor, fd)` that holds its exclusive flock.
    flocks: BTreeMap<usize, (usize, i64)>,
}

impl OpenFiles {
    /// A new descriptor of `actor` on inode `ino`: the lowest free number, as open(2) gives.
    pub fn open(&mut self, actor: usize, ino: usize) -> i64 {
        let mut fd = FIRST_FD;
        while self.files.contains_key(&(actor, fd)) {
            fd += 1;
        }
        self.files.insert((actor, fd), ino);
        fd
    }

    /// The inode descriptor `fd` of `actor` refers to; EBADF when it is not open.
    pub fn inode(&self, actor: usize, fd: i64) -> Result<usize, Errno> {
        self.files.get(&(actor, fd)).copied().ok_or(Errno::EBADF)
    }

    /// flock(fd, LOCK_EX | LOCK_NB): EWOULDBLOCK (EAGAIN) when another open file holds the
    /// inode's lock; taking it again through the same open file succeeds.
    pub fn lock(&mut self, actor: usize, fd: i64) -> Result<(), Errno> {
        let ino = self.inode(actor, fd)?;
        match self.flocks.get(&ino) {
            Some(holder) if *holder != (actor, fd) => Err(Errno::EAGAIN),
            _ => {
                self.flocks.insert(ino, (actor, fd));
                Ok(())
            }
        }
    }

    /// flock(fd, LOCK_UN): drops the lock if this open file holds it (no error otherwise).
    pub fn unlock(&mut self, actor: usize, fd: i64) -> Result<(), Errno> {
        let ino = self.inode(actor, fd)?;
        if self.flocks.get(&ino) == Some(&(actor, fd)) {
            self.flocks.remove(&ino);
        }
        Ok(())
    }

    /// Whether the open file `(actor, fd)` holds its inode's flock.
    pub fn holds_lock(&self, actor: usize, fd: i64) -> bool {
        self.inode(actor, fd)
            .is_ok_and(|ino| self.flocks.get(&ino) == Some(&(actor, fd)))
    }

    /// The lock on `ino` goes, whoever held it (a grant the server turned out to refuse).
    pub fn drop_lock(&mut self, ino: usize) {
        self.flocks.remove(&ino);
    }

    /// close(fd): the descriptor goes, and with it its flock. Returns the inode it referred to.
    pub fn close(&mut self, actor: usize, fd: i64) -> Result<usize, Errno> {
        self.unlock(actor, fd)?;
        self.files.remove(&(actor, fd)).ok_or(Errno::EBADF)
    }

    /// A process that ended closes all its descriptors: the inodes they referred to.
    pub fn close_all(&mut self, actor: usize) -> Vec<usize> {
        let fds: Vec<i64> = self
            .files
            .range((actor, i64::MIN)..=(actor, i64::MAX))
            .map(|((_, fd), _)| *fd)
            .collect();
        fds.into_iter()
            .filter_map(|fd| self.close(actor, fd).ok())
            .collect()
    }

    /// The actors with a descriptor on `ino` (an NFS client keeps a silly-renamed file while
    /// one of its processes has it open).
    pub fn openers(&self, ino: usize) -> impl Iterator<Item = usize> + '_ {
        self.files
            .iter()
            .filter(move |(_, i)| **i == ino)
            .map(|((actor, _), _)| *actor)
    }

    /// Whether some descriptor still refers to `ino` (an open file keeps an unlinked inode alive).
    pub fn refers_to(&self, ino: usize) -> bool {
        self.files.values().any(|i| *i == ino)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flock_belongs_to_the_open_file_and_goes_with_close() {
        let mut o = OpenFiles::default();
        let a = o.open(0, 7);
        let b = o.open(1, 7);
        assert_eq!((a, b), (3, 3), "each actor has its own table");
        assert_eq!(o.lock(0, a), Ok(()));
        assert_eq!(o.lock(1, b), Err(Errno::EAGAIN));
        assert_eq!(o.close(0, a), Ok(7));
        assert_eq!(o.lock(1, b), Ok(()));
        assert_eq!(o.lock(0, a), Err(Errno::EBADF));
        assert_eq!(o.close_all(1), vec![7]);
        assert!(!o.refers_to(7));
    }
}
