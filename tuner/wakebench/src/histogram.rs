//! A log-linear latency histogram in nanoseconds with fixed memory (128 KiB).
//!
//! Values below 1024 ns get one bucket each; above, every power of two is split into 512
//! equal buckets, so a reported value is within 0.2% of the recorded one (about 1 us at
//! 0.5 ms, 2 ms at 1 s). Values at or above 2^40 ns (18 minutes) land in the last bucket.
//! Percentiles use the nearest-rank definition and report the bucket's midpoint, clamped to
//! the smallest and largest value actually recorded; the top rank reports the exact maximum.

/// Exact buckets below `1 << SUB_BITS`; `HALF` buckets per power of two above.
const SUB_BITS: u32 = 10;
const HALF: u64 = 1 << (SUB_BITS - 1);
/// Largest tracked magnitude: values are clamped below `1 << MAX_BITS`.
const MAX_BITS: u32 = 40;
const MAX_VALUE_NS: u64 = (1 << MAX_BITS) - 1;
const NR_BUCKETS: usize = ((MAX_BITS - SUB_BITS + 1) as usize + 1) * HALF as usize;

#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    min_ns: u64,
    max_ns: u64,
    sum_ns: u128,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("min_ns", &self.min_ns)
            .field("max_ns", &self.max_ns)
            .finish_non_exhaustive()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

fn index_of(value_ns: u64) -> usize {
    let v = value_ns.min(MAX_VALUE_NS);
    let msb = 63 - (v | 1).leading_zeros();
    let shift = msb.saturating_sub(SUB_BITS - 1);
    (u64::from(shift) * HALF + (v >> shift)) as usize
}

/// The lowest value and the width of bucket `index`.
fn bucket_range(index: usize) -> (u64, u64) {
    let i = index as u64;
    if i < 2 * HALF {
        return (i, 1);
    }
    let shift = i / HALF - 1;
    ((i - shift * HALF) << shift, 1 << shift)
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            counts: vec![0; NR_BUCKETS].into_boxed_slice(),
            count: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            sum_ns: 0,
        }
    }

    #[inline]
    pub fn record(&mut self, value_ns: u64) {
        let v = value_ns.min(MAX_VALUE_NS);
        self.counts[index_of(v)] += 1;
        self.count += 1;
        self.min_ns = self.min_ns.min(v);
        self.max_ns = self.max_ns.max(v);
        self.sum_ns += u128::from(v);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.count += other.count;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sum_ns += other.sum_ns;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max_ns(&self) -> Option<u64> {
        (self.count > 0).then_some(self.max_ns)
    }

    pub fn mean_ns(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ns as f64 / self.count as f64)
    }

    /// The value at quantile `q` in `[0, 1]` (nearest rank), `None` when empty.
    pub fn quantile_ns(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == self.count {
            return Some(self.max_ns);
        }
        let mut seen = 0u64;
        for (index, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, width) = bucket_range(index);
                let mid = low + (width - 1) / 2;
                return Some(mid.clamp(self.min_ns, self.max_ns));
            }
        }
        unreachable!("rank {rank} is at most the total count {}", self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error bound of a reported value: half a bucket of 1/512 of the magnitude.
    const REL_ERR: f64 = 1.0 / 512.0;

    fn assert_close(got: u64, want: u64) {
        let err = (got as f64 - want as f64).abs();
        assert!(
            err <= want as f64 * REL_ERR + 0.5,
            "got {got}, want {want} (error {err})"
        );
    }

    /// Nearest-rank quantile of an exact sorted sample, the reference for the histogram.
    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    #[test]
    fn buckets_are_contiguous_and_cover_their_values() {
        let mut expect_low = 0;
        for index in 0..NR_BUCKETS {
            let (low, width) = bucket_range(index);
            assert_eq!(low, expect_low, "gap before bucket {index}");
            assert_eq!(index_of(low), index);
            assert_eq!(index_of(low + width - 1), index);
            expect_low = low + width;
        }
        assert_eq!(expect_low, MAX_VALUE_NS + 1);
        assert_eq!(index_of(u64::MAX), NR_BUCKETS - 1);
    }

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 0..1000 {
            h.record(v);
        }
        assert_eq!(h.quantile_ns(0.5), Some(499));
        assert_eq!(h.quantile_ns(0.99), Some(989));
        assert_eq!(h.quantile_ns(0.0), Some(0));
        assert_eq!(h.max_ns(), Some(999));
        assert_eq!(h.mean_ns(), Some(499.5));
    }

    #[test]
    fn constant_distribution_reports_the_constant() {
        let mut h = Histogram::new();
        for _ in 0..10_000 {
            h.record(123_456);
        }
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(h.quantile_ns(q), Some(123_456), "q={q}");
        }
    }

    #[test]
    fn uniform_distribution_percentiles() {
        let mut h = Histogram::new();
        for v in 1..=1_000_000u64 {
            h.record(v);
        }
        assert_close(h.quantile_ns(0.5).unwrap(), 500_000);
        assert_close(h.quantile_ns(0.9).unwrap(), 900_000);
        assert_close(h.quantile_ns(0.99).unwrap(), 990_000);
        assert_close(h.quantile_ns(0.999).unwrap(), 999_000);
        assert_eq!(h.quantile_ns(1.0), Some(1_000_000));
    }

    #[test]
    fn exponential_distribution_matches_the_exact_quantiles() {
        // Deterministic exponential sample (mean 50 us) from an xorshift generator.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut sample: Vec<u64> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                (-(1.0 - u).ln() * 50_000.0) as u64
            })
            .collect();
        let mut h = Histogram::new();
        for &v in &sample {
            h.record(v);
        }
        sample.sort_unstable();
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_close(h.quantile_ns(q).unwrap(), exact(&sample, q));
        }
        // The analytic median of Exp(mean 50 us) is 50 us * ln 2; the sample is close to it.
        let median = h.quantile_ns(0.5).unwrap() as f64;
        assert!((median / (50_000.0 * std::f64::consts::LN_2) - 1.0).abs() < 0.02);
        assert_eq!(h.max_ns(), sample.last().copied());
    }

    #[test]
    fn merge_equals_recording_into_one() {
        let (mut a, mut b, mut all) = (Histogram::new(), Histogram::new(), Histogram::new());
        for v in (0..50_000u64).map(|i| i * 37 % 90_001) {
            if v % 3 == 0 {
                a.record(v);
            } else {
                b.record(v);
            }
            all.record(v);
        }
        a.merge(&b);
        assert_eq!(a.count(), all.count());
        for q in [0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(a.quantile_ns(q), all.quantile_ns(q));
        }
        assert_eq!(a.mean_ns(), all.mean_ns());
    }

    #[test]
    fn empty_and_huge_values() {
        let mut h = Histogram::new();
        assert_eq!(h.quantile_ns(0.5), None);
        assert_eq!(h.max_ns(), None);
        h.record(u64::MAX);
        assert_eq!(h.max_ns(), Some(MAX_VALUE_NS));
        assert_eq!(h.quantile_ns(0.5), Some(MAX_VALUE_NS));
    }
}
