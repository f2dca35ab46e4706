//! [`Cow`]: a part of a machine's state shared between a state and its successors until one of
//! them writes it, which remembers its own fingerprint.
//!
//! The stateful search clones a machine for every successor and hashes every successor whole,
//! yet a step changes one actor and a few parts of the world. A part kept in a `Cow` is cloned
//! as a pointer; the first write through it copies it (`Arc::make_mut`) and forgets its cached
//! fingerprint, and hashing it feeds the cached 128-bit fingerprint of the part (computed once
//! per version) instead of walking it again. Equal parts have equal fingerprints whichever
//! state computed them, so the machine's fingerprint still identifies a state by its contents;
//! a collision inside a part is bounded as for the whole (`fingerprint.rs`).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

use super::fingerprint::Fingerprinter;

/// A copy-on-write part of a state, with its fingerprint cached (see the module doc).
pub struct Cow<T>(Arc<Versioned<T>>);

/// One version of a part and, once asked, its fingerprint.
struct Versioned<T> {
    value: T,
    fingerprint: OnceLock<u128>,
}

impl<T: Clone> Clone for Versioned<T> {
    /// A copy about to be written: its fingerprint is not the original's for long.
    fn clone(&self) -> Self {
        Versioned {
            value: self.value.clone(),
            fingerprint: OnceLock::new(),
        }
    }
}

impl<T> Cow<T> {
    pub fn new(value: T) -> Cow<T> {
        Cow(Arc::new(Versioned {
            value,
            fingerprint: OnceLock::new(),
        }))
    }
}

impl<T: Clone> Cow<T> {
    /// Gives this state its own copy of the part (keeping its fingerprint), so that cloning it
    /// later touches no reference count another thread's states share. See `Machine::detach`.
    pub fn detach(&mut self) {
        let copy = Versioned {
            value: self.0.value.clone(),
            fingerprint: self.0.fingerprint.clone(),
        };
        self.0 = Arc::new(copy);
    }
}

impl<T: Hash> Cow<T> {
    /// The part's own 128-bit fingerprint, computed once per version.
    pub fn fingerprint(&self) -> u128 {
        *self.0.fingerprint.get_or_init(|| {
            let mut h = Fingerprinter::default();
            self.0.value.hash(&mut h);
            h.finish128()
        })
    }
}

impl<T: Default> Default for Cow<T> {
    fn default() -> Self {
        Cow::new(T::default())
    }
}

impl<T> Clone for Cow<T> {
    fn clone(&self) -> Self {
        Cow(Arc::clone(&self.0))
    }
}

impl<T> Deref for Cow<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0.value
    }
}

impl<T: Clone> DerefMut for Cow<T> {
    /// Copies the part if another state shares it, and forgets its fingerprint: the caller is
    /// about to change it.
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        let version = Arc::make_mut(&mut self.0);
        version.fingerprint.take();
        &mut version.value
    }
}

impl<T: Hash> Hash for Cow<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(self.fingerprint());
    }
}

impl<T: fmt::Debug> fmt::Debug for Cow<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.value.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_copies_a_shared_part_and_changes_its_fingerprint() {
        let a = Cow::new(vec![1u64, 2, 3]);
        let mut b = a.clone();
        let before = a.fingerprint();
        assert_eq!(b.fingerprint(), before, "a clone shares the fingerprint");
        b.push(4);
        assert_eq!(*a, vec![1, 2, 3], "the original is untouched");
        assert_ne!(b.fingerprint(), before);
        b.pop();
        assert_eq!(
            b.fingerprint(),
            before,
            "equal contents, equal fingerprints, whichever copy computed them"
        );
    }
}
