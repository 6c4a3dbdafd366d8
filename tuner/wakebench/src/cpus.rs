//! CPU lists as the kernel writes them (`0-3,6,8-9`), and pinning threads to one.

use std::fmt;
use std::str::FromStr;

use nix::sched::CpuSet;
use tuner::observe::cpuset::parse_range;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpuListError {
    #[error("empty cpu list")]
    Empty,
    #[error("invalid cpu list {list:?}: {why}")]
    Syntax { list: String, why: String },
    #[error("cpu {cpu} is beyond the largest cpu number {max}")]
    TooLarge { cpu: usize, max: usize },
}

/// A sorted, duplicate-free set of CPU numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(Vec<usize>);

impl CpuList {
    pub fn cpus(&self) -> &[usize] {
        &self.0
    }

    pub fn to_cpuset(&self) -> CpuSet {
        let mut set = CpuSet::new();
        for &cpu in &self.0 {
            set.set(cpu)
                .expect("parsing keeps every cpu below CpuSet::count()");
        }
        set
    }

    /// The CPUs of `set`, in order.
    pub fn from_cpuset(set: &CpuSet) -> Self {
        Self(
            (0..CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .collect(),
        )
    }

    /// The first CPU of `self` that `allowed` lacks.
    pub fn first_missing_from(&self, allowed: &CpuSet) -> Option<usize> {
        self.0
            .iter()
            .copied()
            .find(|&c| !allowed.is_set(c).unwrap_or(false))
    }
}

fn number(list: &str, s: &str) -> Result<usize, CpuListError> {
    let cpu: usize = s.trim().parse().map_err(|_| CpuListError::Syntax {
        list: list.to_string(),
        why: format!("{:?} is not a cpu number", s.trim()),
    })?;
    let max = CpuSet::count() - 1;
    if cpu > max {
        return Err(CpuListError::TooLarge { cpu, max });
    }
    Ok(cpu)
}

impl FromStr for CpuList {
    type Err = CpuListError;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        if list.trim().is_empty() {
            return Err(CpuListError::Empty);
        }
        let mut cpus = Vec::new();
        for part in list.split(',') {
            let (lo, hi) = parse_range(part, |s| number(list, s))?;
            if lo > hi {
                return Err(CpuListError::Syntax {
                    list: list.to_string(),
                    why: format!("range {lo}-{hi} runs backwards"),
                });
            }
            cpus.extend(lo..=hi);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(Self(cpus))
    }
}

/// The canonical kernel form: ranges of consecutive CPUs joined by commas.
impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end = self.0[i];
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_singles() {
        let l: CpuList = "3,0-1, 5-6,1".parse().unwrap();
        assert_eq!(l.cpus(), &[0, 1, 3, 5, 6]);
        assert_eq!(l.to_string(), "0-1,3,5-6");
        assert_eq!("7".parse::<CpuList>().unwrap().to_string(), "7");
    }

    #[test]
    fn rejects_bad_lists_with_clear_errors() {
        assert_eq!("".parse::<CpuList>(), Err(CpuListError::Empty));
        let e = "0-".parse::<CpuList>().unwrap_err().to_string();
        assert_eq!(e, "invalid cpu list \"0-\": \"\" is not a cpu number");
        let e = "a,1".parse::<CpuList>().unwrap_err().to_string();
        assert_eq!(e, "invalid cpu list \"a,1\": \"a\" is not a cpu number");
        let e = "3-1".parse::<CpuList>().unwrap_err().to_string();
        assert_eq!(e, "invalid cpu list \"3-1\": range 3-1 runs backwards");
        assert!(matches!(
            "0,,1".parse::<CpuList>(),
            Err(CpuListError::Syntax { .. })
        ));
        assert!(matches!(
            "99999".parse::<CpuList>(),
            Err(CpuListError::TooLarge { cpu: 99999, .. })
        ));
    }

    #[test]
    fn cpuset_round_trip_and_missing_cpus() {
        let l: CpuList = "0,2-3".parse().unwrap();
        let set = l.to_cpuset();
        assert_eq!(CpuList::from_cpuset(&set), l);
        let small: CpuList = "0,2".parse().unwrap();
        assert_eq!(l.first_missing_from(&small.to_cpuset()), Some(3));
        assert_eq!(small.first_missing_from(&set), None);
    }
}
