//! A small log-linear histogram of wait times: constant memory whatever the number of samples,
//! mergeable across threads and processes (it travels as JSON), percentiles within 1/16.

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two: 16, so a percentile is off by at most 1/16 of its value.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;

/// Nanosecond samples. Exact below 16 ns; above, buckets of 1/16 of a power of two.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Histogram {
    /// (bucket, count), sorted by bucket; sparse so the JSON stays small.
    buckets: Vec<(u32, u64)>,
    pub count: u64,
    pub min: u64,
    pub max: u64,
    pub sum: u128,
}

fn bucket_of(v: u64) -> u32 {
    if v < SUB {
        return v as u32;
    }
    let e = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = (v >> (e - SUB_BITS)) & (SUB - 1);
    ((e - SUB_BITS + 1) as u64 * SUB + sub) as u32
}

/// The largest value that falls in bucket `b`.
fn upper_of(b: u32) -> u64 {
    let b = b as u64;
    if b < SUB {
        return b;
    }
    let e = b / SUB - 1 + SUB_BITS as u64;
    let sub = b % SUB;
    let lo = (1u64 << e) | (sub << (e - SUB_BITS as u64));
    lo + (1u64 << (e - SUB_BITS as u64)) - 1
}

impl Histogram {
    pub(crate) fn record(&mut self, ns: u64) {
        let b = bucket_of(ns);
        match self.buckets.binary_search_by_key(&b, |&(k, _)| k) {
            Ok(i) => self.buckets[i].1 += 1,
            Err(i) => self.buckets.insert(i, (b, 1)),
        }
        self.min = if self.count == 0 {
            ns
        } else {
            self.min.min(ns)
        };
        self.max = self.max.max(ns);
        self.count += 1;
        self.sum += ns as u128;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for &(b, c) in &other.buckets {
            match self.buckets.binary_search_by_key(&b, |&(k, _)| k) {
                Ok(i) => self.buckets[i].1 += c,
                Err(i) => self.buckets.insert(i, (b, c)),
            }
        }
        if other.count > 0 {
            self.min = if self.count == 0 {
                other.min
            } else {
                self.min.min(other.min)
            };
        }
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.sum += other.sum;
    }

    /// The `q`-quantile (0.5 = median), as its bucket's upper bound capped at the exact maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &(b, c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return upper_of(b).min(self.max).max(self.min);
            }
        }
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        for v in [0u64, 1, 15, 16, 17, 31, 32, 1000, 123_456_789, u64::MAX / 2] {
            let b = bucket_of(v);
            assert!(upper_of(b) >= v, "{v}: bucket {b} ends at {}", upper_of(b));
            if b > 0 {
                assert!(
                    upper_of(b - 1) < v,
                    "{v}: the previous bucket already holds it"
                );
            }
        }
    }

    #[test]
    fn quantiles_are_within_a_sixteenth() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!(
            (p50 - 5_000_000.0).abs() / 5_000_000.0 < 1.0 / 16.0,
            "p50 {p50}"
        );
        assert_eq!(h.quantile(1.0), 10_000_000);
        let mut g = Histogram::default();
        g.record(1);
        g.merge(&h);
        assert_eq!((g.count, g.min, g.max), (10_001, 1, 10_000_000));
    }
}
