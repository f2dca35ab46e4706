//! A fast one-pass 128-bit hash for state fingerprints, and a pass-through hasher for tables
//! keyed by them.
//!
//! The stateful search hashes every successor it generates, so the hash is on its hot path. The
//! standard library's SipHash is built to resist chosen inputs (hash flooding), which states
//! are not, and computing two salted 64-bit SipHashes walked the state twice: half of
//! native-dfs's profile. [`Fingerprinter`] walks it once and keeps two independent 64-bit lanes,
//! each two chains of folded multiplications taking the words in turn (the mixing step of
//! wyhash and foldhash: the 128-bit product of the chain and a constant, high half xor low
//! half), with different constants and rotations, so a collision needs both lanes to collide.
//!
//! What a collision would cost: two distinct states with one fingerprint make the search treat
//! the second as expanded, so its futures could go unexplored. As in Holzmann's hash-compact
//! (SPIN), taking the fingerprint as uniform over 2^128 values, the probability of any
//! collision among n states is at most n²/2^129: about 2.4e-26 for the default bound of
//! 4 M states, 1.5e-23 for 100 M.

use std::hash::{BuildHasher, Hasher};

/// Odd constants from the digits of pi: the multipliers of the two lanes and their finishers.
const K: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7345,
    0xa409_3822_299f_31d1,
    0x082e_fa98_ec4e_6c89,
];

/// The high and low halves of the 128-bit product, xored: a cheap, well-mixing step.
#[inline(always)]
fn fold(x: u64, y: u64) -> u64 {
    let p = u128::from(x) * u128::from(y);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Hashes a value (through its `Hash` impl) into 128 bits in one pass.
///
/// Each lane is two chains that take the words in turn (`lo` the last word's, `lo2` the one
/// before), so a word's multiplication does not wait for the previous word's: the state is
/// hashed about twice as fast as by one chain per lane, whose latency bounded it. Finishing
/// folds both chains and the word count into each lane.
#[derive(Clone)]
pub struct Fingerprinter {
    lo: u64,
    hi: u64,
    lo2: u64,
    hi2: u64,
    words: u64,
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Fingerprinter {
            lo: 0x4528_21e6_38d0_1377,
            hi: 0xbe54_66cf_34e9_0c6c,
            lo2: 0xc0ac_29b7_c97c_50dd,
            hi2: 0x3f84_d5b5_b547_0917,
            words: 0,
        }
    }
}

impl Fingerprinter {
    #[inline(always)]
    fn word(&mut self, x: u64) {
        let lo = fold(self.lo2 ^ x, K[0]);
        let hi = fold(self.hi2 ^ x.rotate_left(29), K[1]);
        self.lo2 = self.lo;
        self.hi2 = self.hi;
        self.lo = lo;
        self.hi = hi;
        self.words += 1;
    }

    /// The 128-bit fingerprint of everything written so far.
    pub fn finish128(&self) -> u128 {
        let lo = fold(fold(self.lo ^ self.words, K[2]) ^ self.lo2, K[0]);
        let hi = fold(
            fold(self.hi ^ self.words.rotate_left(17), K[3]) ^ self.hi2,
            K[1],
        );
        (u128::from(hi) << 64) | u128::from(lo)
    }
}

/// The last one to seven bytes of a write as one little-endian word, with their count in the
/// top byte ("ab" and "ab\0" differ). Read with two overlapping loads instead of a copy into a
/// buffer, whose variable length was a `memcpy` call for every string the search hashed.
#[inline(always)]
fn tail_word(rest: &[u8]) -> u64 {
    let n = rest.len();
    debug_assert!((1..8).contains(&n));
    let bytes = if n >= 4 {
        let first = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let last = u32::from_le_bytes([rest[n - 4], rest[n - 3], rest[n - 2], rest[n - 1]]);
        // The two loads overlap when n < 8; the bytes they share are the same, so or-ing them
        // puts every byte at its own place.
        u64::from(first) | (u64::from(last) << (8 * (n - 4)))
    } else {
        // One to three bytes: the first, the middle and the last, which cover them all.
        u64::from(rest[0])
            | (u64::from(rest[n / 2]) << (8 * (n / 2)))
            | (u64::from(rest[n - 1]) << (8 * (n - 1)))
    };
    bytes | ((n as u64) << 56)
}

impl Hasher for Fingerprinter {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("chunks of eight")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            self.word(tail_word(rest));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.word(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.word(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.word(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.word(i);
    }
    fn write_u128(&mut self, i: u128) {
        self.word(i as u64);
        self.word((i >> 64) as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.word(i as u64);
    }
    fn write_i64(&mut self, i: i64) {
        self.word(i as u64);
    }
    fn finish(&self) -> u64 {
        self.finish128() as u64
    }
}

/// A hasher for tables keyed by fingerprints: they are hashes already, so their low 64 bits
/// are the table's hash (hashing them again with SipHash was pure cost).
#[derive(Default, Clone, Copy)]
pub struct FingerprintKey(u64);

impl Hasher for FingerprintKey {
    fn write(&mut self, bytes: &[u8]) {
        // Only fingerprints are keys; anything else still hashes, if slowly.
        for &b in bytes {
            self.0 = fold(self.0 ^ u64::from(b), K[0]);
        }
    }
    fn write_u128(&mut self, i: u128) {
        self.0 = i as u64;
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`FingerprintKey`]s: `HashMap<u128, V, FingerprintKeys>`.
#[derive(Default, Clone, Copy)]
pub struct FingerprintKeys;

impl BuildHasher for FingerprintKeys {
    type Hasher = FingerprintKey;
    fn build_hasher(&self) -> FingerprintKey {
        FingerprintKey::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn fp<T: Hash>(v: &T) -> u128 {
        let mut h = Fingerprinter::default();
        v.hash(&mut h);
        h.finish128()
    }

    #[test]
    fn equal_values_agree_and_near_values_differ_in_both_lanes() {
        assert_eq!(fp(&("abc", 1u64)), fp(&("abc", 1u64)));
        let pairs = [
            (fp(&("abc", 1u64)), fp(&("abc", 2u64))),
            (fp(&("ab", 0u8)), fp(&("ab\0", 0u8))),
            (fp(&vec![0u64; 3]), fp(&vec![0u64; 4])),
            (fp(&(1u32, 0u32)), fp(&(0u32, 1u32))),
        ];
        for (a, b) in pairs {
            assert_ne!(a as u64, b as u64, "low lanes collide");
            assert_ne!((a >> 64) as u64, (b >> 64) as u64, "high lanes collide");
        }
    }

    #[test]
    fn a_tail_is_its_bytes_in_order_and_its_count() {
        let bytes = *b"abcdefg";
        for n in 1..8 {
            let mut buf = [0u8; 8];
            buf[..n].copy_from_slice(&bytes[..n]);
            buf[7] = n as u8;
            assert_eq!(tail_word(&bytes[..n]), u64::from_le_bytes(buf), "{n} bytes");
        }
    }

    #[test]
    fn no_collisions_among_a_million_small_tuples() {
        let mut seen = std::collections::HashSet::with_hasher(FingerprintKeys);
        for i in 0..1000u64 {
            for j in 0..1000u64 {
                assert!(seen.insert(fp(&(i, j))), "({i}, {j}) collides");
            }
        }
        // And each lane alone stays collision-free on these too.
        let lows: std::collections::HashSet<u64> = seen.iter().map(|&f| f as u64).collect();
        assert_eq!(lows.len(), seen.len());
    }
}
