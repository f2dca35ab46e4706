//! SplitMix64: the small seeded generator behind the stress nemesis, pgspec's sampled
//! interleavings and the gate's random walk, reproducible from its seed and well mixed even
//! for consecutive seeds. (The native engines keep their xorshift64*,
//! `explore/chooser/random.rs`.)

/// splitmix64 (Steele, Lea and Flood), one 64-bit word of state.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next word. (An endless generator, not an `Iterator`: it has no end to signal.)
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform enough below `n` (at least 1) for picking among a few choices.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
