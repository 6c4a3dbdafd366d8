//! [`SysSource`] over a sysfs tree: NUMA nodes, online CPUs, cgroup cpusets and
//! `/sys/kernel/sched_hint`.

use std::fs;
use std::path::{Path, PathBuf};

use super::{CpuSet, Node, ObserveError, SchedHintSysfs, SysSource, Topology};

pub struct SysfsSource {
    root: PathBuf,
}

impl SysfsSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn read(&self, rel: &str) -> Option<String> {
        fs::read_to_string(self.root.join(rel))
            .ok()
            .map(|s| s.trim().to_owned())
    }
}

/// `MemTotal` and `MemFree` in KiB from a node's `meminfo`.
fn node_meminfo(text: &str) -> (u64, u64) {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| {
                let (_, rest) = l.split_once(name)?;
                rest.trim_start_matches(':')
                    .split_ascii_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or(0)
    };
    (field("MemTotal"), field("MemFree"))
}

fn read_dir_values(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| {
            let v = fs::read_to_string(e.path()).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                v.trim().to_owned(),
            ))
        })
        .collect();
    out.sort();
    out
}

impl SysSource for SysfsSource {
    fn topology(&mut self) -> Result<Topology, ObserveError> {
        let online_path = self.root.join("devices/system/cpu/online");
        let online = fs::read_to_string(&online_path).map_err(|e| ObserveError::Read {
            path: online_path.clone(),
            message: e.to_string().to_lowercase(),
        })?;
        let online_cpus = CpuSet::from_list(&online).map_err(|message| ObserveError::Read {
            path: online_path,
            message,
        })?;
        let Some(node_list) = self.read("devices/system/node/online") else {
            return Ok(Topology::flat(online_cpus));
        };
        let ids = CpuSet::from_list(&node_list).unwrap_or_default();
        let mut nodes = Vec::new();
        for id in ids.iter() {
            let base = format!("devices/system/node/node{id}");
            let cpus = self
                .read(&format!("{base}/cpulist"))
                .and_then(|s| CpuSet::from_list(&s).ok())
                .unwrap_or_default();
            let distances = self
                .read(&format!("{base}/distance"))
                .map(|s| {
                    s.split_ascii_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            let (mem_total_kib, mem_free_kib) = self
                .read(&format!("{base}/meminfo"))
                .map_or((0, 0), |t| node_meminfo(&t));
            nodes.push(Node {
                id,
                cpus,
                distances,
                mem_total_kib,
                mem_free_kib,
            });
        }
        if nodes.is_empty() {
            return Ok(Topology::flat(online_cpus));
        }
        Ok(Topology { nodes, online_cpus })
    }

    fn cgroup_cpus(&mut self, cgroup: &str, v1_cpuset: Option<&str>) -> Option<CpuSet> {
        // cgroup v2: the nearest ancestor that has the file; v1: the cpuset hierarchy.
        let candidates: Vec<String> = match v1_cpuset {
            Some(path) => ancestors(path)
                .map(|p| format!("fs/cgroup/cpuset{p}/cpuset.effective_cpus"))
                .collect(),
            None => ancestors(cgroup)
                .map(|p| format!("fs/cgroup{p}/cpuset.cpus.effective"))
                .collect(),
        };
        candidates
            .iter()
            .find_map(|rel| self.read(rel))
            .and_then(|s| CpuSet::from_list(&s).ok())
            .filter(|s| !s.is_empty())
    }

    fn sched_hint(&mut self) -> Option<SchedHintSysfs> {
        let dir = self.root.join("kernel/sched_hint");
        if !dir.is_dir() {
            return None;
        }
        let mut classes: Vec<(String, Vec<(String, String)>)> = fs::read_dir(dir.join("classes"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    read_dir_values(&e.path()),
                )
            })
            .collect();
        classes.sort();
        Some(SchedHintSysfs {
            enabled: self.read("kernel/sched_hint/enabled").map(|v| v == "1"),
            abi_version: self
                .read("kernel/sched_hint/abi_version")
                .and_then(|v| v.parse().ok()),
            classes,
            stats: read_dir_values(&dir.join("stats")),
        })
    }
}

/// `/a/b/c`, `/a/b`, `/a`, `` (the root, which joins as `fs/cgroup/...`).
fn ancestors(path: &str) -> impl Iterator<Item = String> + '_ {
    let trimmed = path.trim_end_matches('/');
    let mut cur = Some(trimmed.to_owned());
    std::iter::from_fn(move || {
        let this = cur.take()?;
        cur = this
            .rfind('/')
            .map(|i| this[..i].to_owned())
            .filter(|_| !this.is_empty());
        Some(this)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_walk_up_to_the_root() {
        let a: Vec<String> = ancestors("/a/b").collect();
        assert_eq!(a, vec!["/a/b", "/a", ""]);
        let a: Vec<String> = ancestors("/").collect();
        assert_eq!(a, vec![""]);
    }

    #[test]
    fn meminfo_fields() {
        let t = "Node 0 MemTotal:       13592780 kB\nNode 0 MemFree:         6739116 kB\n";
        assert_eq!(node_meminfo(t), (13_592_780, 6_739_116));
    }

    #[test]
    fn live_sysfs_has_a_topology() {
        let topo = SysfsSource::new("/sys").topology().expect("live sysfs");
        assert!(!topo.nodes.is_empty());
        assert!(topo.online_cpus.count() >= 1);
        let covered: u32 = topo.nodes.iter().map(|n| n.cpus.count()).sum();
        assert_eq!(covered, topo.online_cpus.count());
    }
}
