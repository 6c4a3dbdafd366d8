//! A set of CPU (or node) ids, parsed from and printed as kernel list syntax (`0-3,8`).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct CpuSet {
    words: Vec<u64>,
}

impl CpuSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `0-3,8,10-11`; an empty (or blank) string is the empty set.
    pub fn from_list(s: &str) -> Result<Self, String> {
        let mut set = CpuSet::new();
        for part in s.trim().split(',').filter(|p| !p.is_empty()) {
            let (lo, hi) = parse_range(part, parse_id)?;
            if lo > hi {
                return Err(format!("bad range {part:?}"));
            }
            for id in lo..=hi {
                set.insert(id);
            }
        }
        Ok(set)
    }

    #[cfg(test)]
    pub fn from_ranges(ranges: &[(u32, u32)]) -> Self {
        let mut set = CpuSet::new();
        for &(lo, hi) in ranges {
            for id in lo..=hi {
                set.insert(id);
            }
        }
        set
    }

    pub fn insert(&mut self, id: u32) {
        let w = (id / 64) as usize;
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << (id % 64);
    }

    pub fn contains(&self, id: u32) -> bool {
        self.words
            .get((id / 64) as usize)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            (0..64)
                .filter(move |b| w & (1u64 << b) != 0)
                .map(move |b| i as u32 * 64 + b)
        })
    }

    /// Every id of `other` is in `self`.
    pub fn is_superset(&self, other: &CpuSet) -> bool {
        other.iter().all(|id| self.contains(id))
    }

    /// The words, padded to `len`, for kernel bitmaps (`migrate_pages` node masks).
    pub fn to_words(&self, len: usize) -> Vec<u64> {
        let mut w = self.words.clone();
        w.resize(len.max(w.len()), 0);
        w
    }
}

/// One part of a kernel CPU list, `n` or `lo-hi`, with `id` reading each number (low first).
/// Whether the range runs forwards, and what an empty part means, is the caller's to check.
pub fn parse_range<T: Copy, E>(
    part: &str,
    mut id: impl FnMut(&str) -> Result<T, E>,
) -> Result<(T, T), E> {
    match part.split_once('-') {
        Some((lo, hi)) => {
            let lo = id(lo)?;
            Ok((lo, id(hi)?))
        }
        None => {
            let v = id(part)?;
            Ok((v, v))
        }
    }
}

fn parse_id(s: &str) -> Result<u32, String> {
    s.trim().parse().map_err(|_| format!("bad cpu id {s:?}"))
}

impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u32> = self.iter().collect();
        let mut parts = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            let start = ids[i];
            while i + 1 < ids.len() && ids[i + 1] == ids[i] + 1 {
                i += 1;
            }
            parts.push(if start == ids[i] {
                start.to_string()
            } else {
                format!("{start}-{}", ids[i])
            });
            i += 1;
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_list_syntax() {
        let s = CpuSet::from_list("0-3,8,10-11\n").unwrap();
        assert_eq!(s.count(), 7);
        assert!(s.contains(8) && !s.contains(9));
        assert_eq!(s.to_string(), "0-3,8,10-11");
        assert!(CpuSet::from_list("").unwrap().is_empty());
        assert!(CpuSet::from_list("3-1").is_err());
        assert!(CpuSet::from_list("x").is_err());
    }

    #[test]
    fn supersets_and_words() {
        let all = CpuSet::from_list("0-127").unwrap();
        let some = CpuSet::from_ranges(&[(64, 70)]);
        assert!(all.is_superset(&some));
        assert!(!some.is_superset(&all));
        assert_eq!(some.to_words(4), vec![0, 0x7f, 0, 0]);
    }
}
