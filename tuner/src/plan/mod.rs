//! NUMA placement: which node each hinted process should prefer.
//!
//! - The preferred node is the node holding most of the process's resident pages, when it
//!   holds more than `majority_pct` of them.
//! - Large processes without such a node go where free CPU and memory are largest.
//! - Several instances of one server (same rule, same executable) go one per node.
//! - Hysteresis: a process moves only when the new node leads the current one by
//!   `hysteresis_pct` points for `stable_scans` consecutive scans; capacity placements stick.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::classify::Decision;
use crate::config::PlanConfig;
use crate::observe::{CpuSet, CpuTime, ProcKey, ProcObs, Topology};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodePlan {
    pub node: Option<u32>,
    pub reason: String,
    /// Keep the process on `node` (a spread instance: its node is the whole point).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
}

impl NodePlan {
    fn none(reason: impl Into<String>) -> Self {
        NodePlan {
            node: None,
            strict: false,
            reason: reason.into(),
        }
    }
}

/// One process the planner places.
pub struct Candidate<'a> {
    pub proc: &'a ProcObs,
    pub decision: &'a Decision,
    /// The CPUs its cpuset allows, when known: a spread instance goes only to a node it may
    /// run on.
    pub allowed_cpus: Option<&'a CpuSet>,
    /// The node of the hint it holds from this tuner (written by this run, or taken up from
    /// the state file of an earlier one, `tuner once` included): a spread instance keeps
    /// it, rather than being placed afresh by free capacity.
    pub held_node: Option<u32>,
}

#[derive(Debug, Clone, Default)]
struct NodeState {
    current: Option<u32>,
    candidate: Option<u32>,
    streak: u32,
    /// Placed strictly as one of several instances: it stays so when its peers leave, rather
    /// than turning soft and perhaps moving while they restart.
    spread: bool,
    /// Its node is withheld because it outgrew it; it comes back after `stable_scans`
    /// scans in a row that fit (a process packed on a node queues more there than spread
    /// out, so one scan that fits is not enough).
    outgrown: bool,
    fits: u32,
}

/// Free capacity per node, in the order of `Topology::nodes`.
#[derive(Debug, Clone)]
pub struct Capacity {
    ids: Vec<u32>,
    cpus: Vec<f64>,
    free_cpus: Vec<f64>,
    mem_kib: Vec<f64>,
    free_mem_kib: Vec<f64>,
}

impl Capacity {
    /// From the topology and per-CPU busy times of two `/proc/stat` samples (busy share of
    /// each CPU between them; CPUs without two samples count as idle).
    pub fn new(topo: &Topology, before: &[CpuTime], after: &[CpuTime]) -> Self {
        let busy_frac = |cpu: u32| -> f64 {
            let a = before.iter().find(|c| c.cpu == cpu);
            let b = after.iter().find(|c| c.cpu == cpu);
            match (a, b) {
                (Some(a), Some(b)) if b.total > a.total => {
                    (b.busy.saturating_sub(a.busy)) as f64 / (b.total - a.total) as f64
                }
                _ => 0.0,
            }
        };
        let mut cap = Capacity {
            ids: vec![],
            cpus: vec![],
            free_cpus: vec![],
            mem_kib: vec![],
            free_mem_kib: vec![],
        };
        for n in &topo.nodes {
            let cpus = f64::from(n.cpus.count());
            let busy: f64 = n.cpus.iter().map(busy_frac).sum();
            cap.ids.push(n.id);
            cap.cpus.push(cpus);
            cap.free_cpus.push((cpus - busy).max(0.0));
            cap.mem_kib.push(n.mem_total_kib as f64);
            cap.free_mem_kib.push(n.mem_free_kib as f64);
        }
        cap
    }

    fn index(&self, node: u32) -> Option<usize> {
        self.ids.iter().position(|&id| id == node)
    }

    fn score(&self, i: usize, cpu_weight: f64) -> f64 {
        let cpu = if self.cpus[i] > 0.0 {
            self.free_cpus[i] / self.cpus[i]
        } else {
            0.0
        };
        let mem = if self.mem_kib[i] > 0.0 {
            self.free_mem_kib[i] / self.mem_kib[i]
        } else {
            0.0
        };
        cpu_weight * cpu + (1.0 - cpu_weight) * mem
    }

    /// The node with the most free capacity among those with CPUs: a hinted node must have
    /// CPUs (a CPU-less CXL or HBM node's free memory would otherwise win on a busy host).
    fn best(&self, cpu_weight: f64) -> Option<u32> {
        (0..self.ids.len())
            .filter(|&i| self.cpus[i] > 0.0)
            .max_by(|&a, &b| {
                self.score(a, cpu_weight)
                    .total_cmp(&self.score(b, cpu_weight))
                    .then(b.cmp(&a))
            })
            .map(|i| self.ids[i])
    }

    fn take(&mut self, node: u32, p: &ProcObs) {
        if let Some(i) = self.index(node) {
            let cpu = p.rates.map_or(0.0, |r| r.cpu_pct / 100.0);
            self.free_cpus[i] = (self.free_cpus[i] - cpu).max(0.0);
            self.free_mem_kib[i] = (self.free_mem_kib[i] - p.rss_kib as f64).max(0.0);
        }
    }
}

/// Keeps placement state between scans.
#[derive(Debug, Default)]
pub struct Planner {
    state: HashMap<ProcKey, NodeState>,
    /// The last numa_maps reading of each process (they are read only every few scans).
    numa: HashMap<ProcKey, Vec<u64>>,
    /// Instances warned about as too big for their node, with the node.
    warned: HashSet<(ProcKey, u32)>,
}

/// Demand above a node's CPUs that counts as oversubscribed: a busy neighbour's share of
/// the runqueue wait alone must not raise the warning.
const OVERSUBSCRIBED_MARGIN_CPUS: f64 = 0.5;

/// An admin's node, if this host has it: a config written for another machine must not
/// have a hint reported as placed on a node that does not exist.
fn admin_node(topo: &Topology, node: u32) -> Result<u32, String> {
    match topo.node(node) {
        Some(_) => Ok(node),
        None => Err(format!("admin node {node} is not on this host")),
    }
}

/// (node, share in percent) of the node holding most pages.
fn majority(numa_kib: &[u64]) -> Option<(u32, u32)> {
    let total: u64 = numa_kib.iter().sum();
    if total == 0 {
        return None;
    }
    let (node, &kib) = numa_kib
        .iter()
        .enumerate()
        .max_by_key(|&(i, &k)| (k, std::cmp::Reverse(i)))?;
    Some((node as u32, (kib * 100 / total) as u32))
}

fn share_of(numa_kib: &[u64], node: u32) -> u32 {
    let total: u64 = numa_kib.iter().sum();
    if total == 0 {
        return 0;
    }
    (numa_kib.get(node as usize).copied().unwrap_or(0) * 100 / total) as u32
}

/// Why `p` outgrows `node`, when it does: it wants more CPUs (running plus waiting on a
/// runqueue, over the last interval) than the node has, by more than the margin.
fn outgrows(p: &ProcObs, topo: &Topology, node: u32) -> Option<String> {
    let cpus = topo.node(node)?.cpus.count();
    let r = p.rates?;
    let wanted_cpus = (r.cpu_pct + r.run_delay_pct) / 100.0;
    if wanted_cpus <= f64::from(cpus) + OVERSUBSCRIBED_MARGIN_CPUS {
        return None;
    }
    Some(format!(
        "oversubscribed: wants {wanted_cpus:.1} CPUs, node {node} has {cpus}"
    ))
}

impl Planner {
    pub fn new() -> Self {
        Self::default()
    }

    /// Why an instance kept on `node` is too big for it, when it is: it wants more CPUs
    /// (running plus waiting on a runqueue, over the last interval) than the node has, so
    /// part of it waits behind the rest (llama.cpp with `--threads` above the node's CPUs).
    /// Warned once per instance and node.
    fn oversubscribed(&mut self, p: &ProcObs, topo: &Topology, node: u32) -> Option<String> {
        let why = outgrows(p, topo, node)?;
        if self.warned.insert((p.key(), node)) {
            tracing::warn!(
                pid = p.pid,
                comm = %p.comm,
                node,
                "instance {why}: fewer compute threads (llama.cpp --threads) would stop them queueing"
            );
        }
        Some(why)
    }

    /// Puts `c` on `node` outright (an admin's node, a spread instance): it takes capacity
    /// there, and its node state starts over at `node`.
    fn place(
        &mut self,
        c: &Candidate<'_>,
        node: u32,
        reason: String,
        strict: bool,
        cap: &mut Capacity,
        out: &mut HashMap<ProcKey, NodePlan>,
    ) {
        cap.take(node, c.proc);
        self.state.insert(
            c.proc.key(),
            NodeState {
                current: Some(node),
                spread: strict,
                ..Default::default()
            },
        );
        out.insert(
            c.proc.key(),
            NodePlan {
                node: Some(node),
                reason,
                strict,
            },
        );
    }

    pub fn plan(
        &mut self,
        cands: &[Candidate<'_>],
        topo: &Topology,
        mut cap: Capacity,
        cfg: &PlanConfig,
    ) -> HashMap<ProcKey, NodePlan> {
        let mut out = HashMap::with_capacity(cands.len());
        for c in cands {
            if let Some(n) = &c.proc.numa_kib {
                self.numa.insert(c.proc.key(), n.clone());
            }
        }
        let live: HashSet<ProcKey> = cands.iter().map(|c| c.proc.key()).collect();
        self.state.retain(|k, _| live.contains(k));
        self.numa.retain(|k, _| live.contains(k));
        self.warned.retain(|(k, _)| live.contains(k));

        if !cfg.numa || !topo.is_numa() {
            let why = if cfg.numa {
                "single node"
            } else {
                "numa planning off"
            };
            for c in cands {
                let plan = match c.decision.node.map(|n| admin_node(topo, n)) {
                    Some(Ok(n)) => NodePlan {
                        node: Some(n),
                        strict: false,
                        reason: "admin".into(),
                    },
                    Some(Err(why)) => NodePlan::none(&why),
                    None => NodePlan::none(why),
                };
                out.insert(c.proc.key(), plan);
            }
            return out;
        }
        let w = f64::from(cfg.cpu_weight_pct) / 100.0;

        // Admin-fixed nodes first: they take capacity before anyone else.
        for c in cands {
            match c.decision.node.map(|n| admin_node(topo, n)) {
                Some(Ok(node)) => self.place(c, node, "admin".into(), false, &mut cap, &mut out),
                Some(Err(why)) => {
                    out.insert(c.proc.key(), NodePlan::none(&why));
                }
                None => {}
            }
        }

        // Server instances, one per node.
        if cfg.spread_instances {
            let mut groups: HashMap<(String, String), Vec<&Candidate<'_>>> = HashMap::new();
            for c in cands
                .iter()
                .filter(|c| c.decision.spread && !out.contains_key(&c.proc.key()))
            {
                let exe = c
                    .proc
                    .exe
                    .as_ref()
                    .map(|e| e.display().to_string())
                    .unwrap_or_else(|| c.proc.comm.clone());
                groups
                    .entry((c.decision.rule.clone(), exe))
                    .or_default()
                    .push(c);
            }
            let mut groups: Vec<_> = groups.into_iter().filter(|(_, v)| v.len() >= 2).collect();
            groups.sort_by(|a, b| a.0.cmp(&b.0));
            for ((rule, _), mut members) in groups {
                members.sort_by_key(|c| c.proc.pid);
                // Nodes with CPUs only; each instance only to those its cpuset allows.
                let cpu_nodes: Vec<u32> = topo
                    .nodes
                    .iter()
                    .filter(|n| n.cpus.count() > 0)
                    .map(|n| n.id)
                    .collect();
                let eligible = |c: &Candidate<'_>, n: u32| {
                    cpu_nodes.contains(&n)
                        && c.allowed_cpus.is_none_or(|a| {
                            topo.node(n)
                                .is_some_and(|node| node.cpus.iter().any(|cpu| a.contains(cpu)))
                        })
                };
                let per_node = members.len().div_ceil(cpu_nodes.len().max(1));
                let mut counts: HashMap<u32, usize> = HashMap::new();
                let mut placed: HashMap<ProcKey, u32> = HashMap::new();
                for c in &members {
                    // A new planner (a daemon after `tuner once`, or after a restart) knows
                    // no current node: without the held one, or else the one most of its
                    // memory is on, it would place by free capacity, which the first run's
                    // memory moves changed, and swap them (moving both models across).
                    let pages = self
                        .numa
                        .get(&c.proc.key())
                        .and_then(|n| majority(n))
                        .filter(|&(_, share)| share > cfg.majority_pct)
                        .map(|(node, _)| node);
                    let cur = self
                        .state
                        .get(&c.proc.key())
                        .and_then(|s| s.current)
                        .or(c.held_node)
                        .or(pages);
                    if let Some(n) = cur.filter(|&n| {
                        eligible(c, n) && counts.get(&n).copied().unwrap_or(0) < per_node
                    }) {
                        *counts.entry(n).or_default() += 1;
                        placed.insert(c.proc.key(), n);
                    }
                }
                for c in &members {
                    if placed.contains_key(&c.proc.key()) {
                        continue;
                    }
                    let node = cpu_nodes
                        .iter()
                        .copied()
                        .filter(|&n| eligible(c, n))
                        .min_by(|&a, &b| {
                            let (ca, cb) = (
                                counts.get(&a).copied().unwrap_or(0),
                                counts.get(&b).copied().unwrap_or(0),
                            );
                            let (sa, sb) = (
                                cap.index(a).map_or(0.0, |i| cap.score(i, w)),
                                cap.index(b).map_or(0.0, |i| cap.score(i, w)),
                            );
                            ca.cmp(&cb).then(sb.total_cmp(&sa)).then(a.cmp(&b))
                        });
                    match node {
                        Some(node) => {
                            *counts.entry(node).or_default() += 1;
                            placed.insert(c.proc.key(), node);
                        }
                        None => {
                            out.insert(
                                c.proc.key(),
                                NodePlan::none("spread: no node with CPUs its cpuset allows"),
                            );
                        }
                    }
                }
                let total = members.len();
                for (i, c) in members.iter().enumerate() {
                    let Some(&node) = placed.get(&c.proc.key()) else {
                        continue;
                    };
                    let mut reason = format!("spread {}/{total} of {rule}", i + 1);
                    // Kept on a node it outgrows, its threads would queue behind each other
                    // (llama.cpp's spinning barriers collapse so): preferred there, not held.
                    let strict = match self.oversubscribed(c.proc, topo, node) {
                        Some(why) => {
                            reason = format!("{reason}; {why}, so not kept there");
                            false
                        }
                        None => true,
                    };
                    self.place(c, node, reason, strict, &mut cap, &mut out);
                }
            }
        }

        // Everyone else: majority of pages, else capacity for large processes.
        let mut rest: Vec<&Candidate<'_>> = cands
            .iter()
            .filter(|c| !out.contains_key(&c.proc.key()))
            .collect();
        rest.sort_by_key(|c| std::cmp::Reverse(c.proc.rss_kib));
        for c in rest {
            let key = c.proc.key();
            let numa = self.numa.get(&key).cloned();
            let st = self.state.entry(key).or_default();
            if let Some(cur) = st.current.filter(|_| st.spread && c.decision.spread) {
                cap.take(cur, c.proc);
                out.insert(
                    key,
                    NodePlan {
                        node: Some(cur),
                        reason: "kept: a spread instance whose peers left".into(),
                        strict: true,
                    },
                );
                continue;
            }
            st.spread = false;
            let plan = match numa.as_deref().and_then(majority) {
                Some((node, share)) if share > cfg.majority_pct => match st.current {
                    None => {
                        st.current = Some(node);
                        NodePlan {
                            node: Some(node),
                            strict: false,
                            reason: format!("majority {share}%"),
                        }
                    }
                    Some(cur) if cur == node => {
                        st.candidate = None;
                        st.streak = 0;
                        NodePlan {
                            node: Some(node),
                            strict: false,
                            reason: format!("majority {share}%"),
                        }
                    }
                    Some(cur) => {
                        let cur_share = numa.as_deref().map_or(0, |n| share_of(n, cur));
                        if share < cur_share + cfg.hysteresis_pct {
                            st.candidate = None;
                            st.streak = 0;
                            NodePlan {
                                node: Some(cur),
                                strict: false,
                                reason: format!(
                                    "kept: node {node} leads by {} < {} points",
                                    share.saturating_sub(cur_share),
                                    cfg.hysteresis_pct
                                ),
                            }
                        } else {
                            if st.candidate == Some(node) {
                                st.streak += 1;
                            } else {
                                st.candidate = Some(node);
                                st.streak = 1;
                            }
                            if st.streak >= cfg.stable_scans {
                                st.current = Some(node);
                                st.candidate = None;
                                st.streak = 0;
                                NodePlan {
                                    node: Some(node),
                                    strict: false,
                                    reason: format!("moved: majority {share}%"),
                                }
                            } else {
                                NodePlan {
                                    node: Some(cur),
                                    strict: false,
                                    reason: format!(
                                        "kept: node {node} leads, scan {}/{}",
                                        st.streak, cfg.stable_scans
                                    ),
                                }
                            }
                        }
                    }
                },
                _ if c.proc.rss_kib >= cfg.large_rss_kib => match st.current {
                    Some(cur) => NodePlan {
                        node: Some(cur),
                        strict: false,
                        reason: "capacity (kept)".into(),
                    },
                    None => match cap.best(w) {
                        Some(node) => {
                            st.current = Some(node);
                            NodePlan {
                                node: Some(node),
                                strict: false,
                                reason: "capacity".into(),
                            }
                        }
                        None => NodePlan::none("no capacity data"),
                    },
                },
                _ => match st.current {
                    // Pages spread out after a node was chosen: keep it until the numbers say otherwise.
                    Some(cur) => NodePlan {
                        node: Some(cur),
                        strict: false,
                        reason: "kept: no majority".into(),
                    },
                    None if numa.is_none() => NodePlan::none("no numa_maps yet"),
                    None => NodePlan::none("no majority node"),
                },
            };
            // A node preferred for its pages or free capacity, by a process that wants more
            // CPUs than that node has, packs its threads onto part of the machine: in the
            // two-node guest a llama.cpp server with four compute threads went onto node 0's
            // two CPUs, and its spinning barriers made it slower than with no hint at all.
            // The node state is kept, so the process goes back there once it fits.
            let plan = match (plan.node, plan.node.and_then(|n| outgrows(c.proc, topo, n))) {
                (_, Some(why)) => {
                    st.outgrown = true;
                    st.fits = 0;
                    NodePlan::none(format!("{why}, so no node preferred"))
                }
                (Some(node), None) if st.outgrown => {
                    st.fits += 1;
                    if st.fits >= cfg.stable_scans {
                        st.outgrown = false;
                        st.fits = 0;
                        plan
                    } else {
                        NodePlan::none(format!(
                            "fits node {node} again, scan {}/{}",
                            st.fits, cfg.stable_scans
                        ))
                    }
                }
                _ => plan,
            };
            if let Some(node) = plan.node {
                cap.take(node, c.proc);
            }
            out.insert(key, plan);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Verdict;
    use crate::config::Config;
    use crate::hint::{HintClass, Step};
    use crate::observe::{test_proc, CpuSet, Node, Rates};

    fn topo2() -> Topology {
        let node = |id: u32, cpus: &str, free: u64| Node {
            id,
            cpus: CpuSet::from_list(cpus).unwrap(),
            distances: vec![10, 21],
            mem_total_kib: 16 << 20,
            mem_free_kib: free,
        };
        Topology {
            nodes: vec![node(0, "0-3", 4 << 20), node(1, "4-7", 12 << 20)],
            online_cpus: CpuSet::from_list("0-7").unwrap(),
        }
    }

    fn decision(rule: &str, spread: bool) -> Decision {
        Decision {
            verdict: Verdict::Class(HintClass::Throughput),
            step: Step::Rule,
            rule: rule.into(),
            confidence: 0.9,
            strict: false,
            inherit: true,
            spread,
            node: None,
            skipped_tids: vec![],
        }
    }

    fn with_numa(pid: i32, numa: Vec<u64>) -> ProcObs {
        let mut p = test_proc(pid, "svc");
        p.rss_kib = numa.iter().sum();
        p.numa_kib = Some(numa);
        p
    }

    fn plan_one(planner: &mut Planner, p: &ProcObs, d: &Decision) -> NodePlan {
        plan_on(planner, p, d, &topo2())
    }

    /// One process planned alone on `topo`, with the default settings and idle CPUs.
    fn plan_on(planner: &mut Planner, p: &ProcObs, d: &Decision, topo: &Topology) -> NodePlan {
        plan_with(planner, p, d, topo, Capacity::new(topo, &[], &[]))
    }

    /// One process planned alone on `topo` with capacity `cap`.
    fn plan_with(
        planner: &mut Planner,
        p: &ProcObs,
        d: &Decision,
        topo: &Topology,
        cap: Capacity,
    ) -> NodePlan {
        let cfg = Config::default().plan;
        planner
            .plan(
                &[Candidate {
                    proc: p,
                    decision: d,
                    allowed_cpus: None,
                    held_node: None,
                }],
                topo,
                cap,
                &cfg,
            )
            .remove(&p.key())
            .unwrap()
    }

    #[test]
    fn majority_node_wins_and_hysteresis_holds() {
        let mut planner = Planner::new();
        let d = decision("x", false);
        let p = with_numa(10, vec![700, 300]);
        assert_eq!(plan_one(&mut planner, &p, &d).node, Some(0));
        // Node 1 takes the lead by 10 points only: not enough to move.
        let p = with_numa(10, vec![450, 550]);
        let plan = plan_one(&mut planner, &p, &d);
        assert_eq!(plan.node, Some(0), "{}", plan.reason);
        // A clear lead must last stable_scans (3) scans.
        let p = with_numa(10, vec![200, 800]);
        assert_eq!(plan_one(&mut planner, &p, &d).node, Some(0));
        assert_eq!(plan_one(&mut planner, &p, &d).node, Some(0));
        let plan = plan_one(&mut planner, &p, &d);
        assert_eq!(plan.node, Some(1));
        assert!(plan.reason.starts_with("moved"), "{}", plan.reason);
    }

    #[test]
    fn large_process_without_majority_goes_to_free_capacity() {
        let mut planner = Planner::new();
        let d = decision("x", false);
        let p = with_numa(11, vec![400 << 10, 400 << 10]);
        let plan = plan_one(&mut planner, &p, &d);
        assert_eq!((plan.node, plan.reason.as_str()), (Some(1), "capacity"));
        let small = with_numa(12, vec![500, 500]);
        assert_eq!(plan_one(&mut planner, &small, &d).node, None);
    }

    #[test]
    fn instances_spread_one_per_node_and_stay() {
        let cfg = Config::default().plan;
        let topo = topo2();
        let mut planner = Planner::new();
        let d = decision("database", true);
        let procs: Vec<ProcObs> = (20..22).map(|pid| with_numa(pid, vec![900, 100])).collect();
        let run = |planner: &mut Planner| {
            let cands: Vec<Candidate<'_>> = procs
                .iter()
                .map(|p| Candidate {
                    proc: p,
                    decision: &d,
                    allowed_cpus: None,
                    held_node: None,
                })
                .collect();
            planner.plan(&cands, &topo, Capacity::new(&topo, &[], &[]), &cfg)
        };
        let first = run(&mut planner);
        let mut nodes: Vec<u32> = first.values().filter_map(|p| p.node).collect();
        nodes.sort();
        assert_eq!(nodes, vec![0, 1]);
        assert!(
            first.values().all(|p| p.strict),
            "a spread instance is kept on its node: {first:?}"
        );
        let second = run(&mut planner);
        assert_eq!(first, second);
    }

    /// Issue 21: an instance placed on a node whose CPUs it outgrows (llama.cpp with more
    /// `--threads` than the node has CPUs) is said to be so, in its reason and once in the log.
    #[test]
    fn an_instance_that_outgrows_its_node_is_called_oversubscribed() {
        let cfg = Config::default().plan;
        let topo = topo2();
        let mut planner = Planner::new();
        let d = decision("llm", true);
        let mut big = with_numa(40, vec![900, 100]);
        // Four CPUs busy and two more threads' worth waiting: six wanted, four on a node.
        big.rates = Some(Rates {
            cpu_pct: 400.0,
            run_delay_pct: 200.0,
            ..Default::default()
        });
        let mut fits = with_numa(41, vec![900, 100]);
        fits.rates = Some(Rates {
            cpu_pct: 380.0,
            run_delay_pct: 40.0,
            ..Default::default()
        });
        let cands = [
            Candidate {
                proc: &big,
                decision: &d,
                allowed_cpus: None,
                held_node: None,
            },
            Candidate {
                proc: &fits,
                decision: &d,
                allowed_cpus: None,
                held_node: None,
            },
        ];
        let out = planner.plan(&cands, &topo, Capacity::new(&topo, &[], &[]), &cfg);
        let big_plan = &out[&big.key()];
        let node = big_plan.node.expect("placed");
        assert!(
            big_plan.reason.ends_with(&format!(
                "oversubscribed: wants 6.0 CPUs, node {node} has 4, so not kept there"
            )),
            "{big_plan:?}"
        );
        assert!(
            !out[&fits.key()].reason.contains("oversubscribed"),
            "{out:?}"
        );
        assert!(planner.warned.contains(&(big.key(), node)));
        assert_eq!(planner.warned.len(), 1);
    }

    /// Issue 21: a process that wants more CPUs than the node its pages are on gets no
    /// node, rather than having all its threads packed there; it gets the node back once
    /// it has fitted for `stable_scans` scans in a row.
    #[test]
    fn a_process_that_outgrows_its_majority_node_gets_no_node() {
        let mut planner = Planner::new();
        let d = decision("llm", false);
        let mut p = with_numa(43, vec![900, 100]);
        p.rates = Some(Rates {
            cpu_pct: 300.0,
            run_delay_pct: 300.0,
            ..Default::default()
        });
        let plan = plan_one(&mut planner, &p, &d);
        assert_eq!(
            plan,
            NodePlan::none("oversubscribed: wants 6.0 CPUs, node 0 has 4, so no node preferred"),
        );
        assert!(planner.warned.is_empty(), "only spread instances warn");
        p.rates = Some(Rates {
            cpu_pct: 300.0,
            run_delay_pct: 100.0,
            ..Default::default()
        });
        // Back after stable_scans (3) scans that fit, not at the first.
        let plan = plan_one(&mut planner, &p, &d);
        assert_eq!(plan, NodePlan::none("fits node 0 again, scan 1/3"));
        assert_eq!(plan_one(&mut planner, &p, &d).node, None);
        let plan = plan_one(&mut planner, &p, &d);
        assert_eq!(plan.node, Some(0), "{plan:?}");
    }

    /// The same for a large process placed by free capacity.
    #[test]
    fn a_process_that_outgrows_the_freest_node_gets_no_node() {
        let mut planner = Planner::new();
        let mut p = with_numa(44, vec![400 << 10, 400 << 10]);
        p.rates = Some(Rates {
            cpu_pct: 500.0,
            ..Default::default()
        });
        let plan = plan_one(&mut planner, &p, &decision("x", false));
        assert_eq!(plan.node, None, "{plan:?}");
        assert!(plan
            .reason
            .starts_with("oversubscribed: wants 5.0 CPUs, node 1 has 4"));
    }

    #[test]
    fn a_process_placed_by_its_pages_is_not_kept_there() {
        let mut planner = Planner::new();
        let p = with_numa(42, vec![900, 100]);
        let plan = plan_one(&mut planner, &p, &decision("x", false));
        assert_eq!((plan.node, plan.strict), (Some(0), false), "{plan:?}");
    }

    #[test]
    fn single_node_machines_get_no_node() {
        let mut planner = Planner::new();
        let mut topo = topo2();
        topo.nodes.truncate(1);
        let p = with_numa(30, vec![100]);
        let d = decision("x", false);
        assert_eq!(
            plan_on(&mut planner, &p, &d, &topo),
            NodePlan {
                node: None,
                strict: false,
                reason: "single node".into()
            }
        );
    }

    /// Issue 20, reproduction 7: `node = 99` on a one-node host was planned, written and
    /// reported as applied.
    #[test]
    fn an_admin_node_the_host_lacks_is_not_planned() {
        for nodes in [1, 2] {
            let mut planner = Planner::new();
            let mut topo = topo2();
            topo.nodes.truncate(nodes);
            let p = with_numa(30, vec![100; nodes]);
            let mut d = decision("x", false);
            d.node = Some(99);
            let plan = plan_on(&mut planner, &p, &d, &topo);
            assert_eq!(plan.node, None, "{nodes} nodes: {}", plan.reason);
            assert!(
                plan.reason.contains("node 99 is not on this host"),
                "{}",
                plan.reason
            );
        }
    }

    #[test]
    fn capacity_uses_cpu_busy_time() {
        let topo = topo2();
        let before: Vec<CpuTime> = (0..8)
            .map(|c| CpuTime {
                cpu: c,
                busy: 0,
                total: 0,
            })
            .collect();
        let after: Vec<CpuTime> = (0..8)
            .map(|c| CpuTime {
                cpu: c,
                busy: if c < 4 { 100 } else { 0 },
                total: 100,
            })
            .collect();
        let cap = Capacity::new(&topo, &before, &after);
        assert_eq!(cap.free_cpus, vec![0.0, 4.0]);
        assert_eq!(cap.best(1.0), Some(1));
    }

    /// A node of `topo2`'s kind without CPUs (CXL or HBM memory).
    fn with_cpu_less_node(mut topo: Topology) -> Topology {
        topo.nodes.push(Node {
            id: 2,
            cpus: CpuSet::new(),
            distances: vec![20, 20, 10],
            mem_total_kib: 64 << 20,
            mem_free_kib: 64 << 20,
        });
        topo
    }

    fn spread_cands<'a>(procs: &'a [&'a ProcObs], d: &'a Decision) -> Vec<Candidate<'a>> {
        procs
            .iter()
            .map(|p| Candidate {
                proc: p,
                decision: d,
                allowed_cpus: None,
                held_node: None,
            })
            .collect()
    }

    /// Issue 21, seen in `make demo`: `tuner once` put two servers on nodes 1 and 0 and
    /// moved one's memory; the daemon started next, with a new planner, placed them afresh by
    /// free capacity (changed by that move) and swapped them, moving both models across. A
    /// new planner keeps the node each instance holds.
    #[test]
    fn a_new_planner_keeps_the_nodes_the_instances_hold() {
        let cfg = Config::default().plan;
        let mut topo = topo2();
        // Node 0 now has the more free memory: by capacity alone, the first instance
        // would go there.
        topo.nodes[0].mem_free_kib = 14 << 20;
        topo.nodes[1].mem_free_kib = 2 << 20;
        let d = decision("llm", true);
        let a = with_numa(50, vec![100, 900]);
        let b = with_numa(51, vec![900, 100]);
        let held = [(&a, 1), (&b, 0)];
        let cands = |held_node: bool| -> Vec<Candidate<'_>> {
            held.iter()
                .map(|&(p, node)| Candidate {
                    proc: p,
                    decision: &d,
                    allowed_cpus: None,
                    held_node: held_node.then_some(node),
                })
                .collect()
        };
        // By the hint held, and where none is (a `tuner once` hint that lapsed before the
        // daemon came), by where each one's memory is.
        for held_node in [true, false] {
            let out = Planner::new().plan(
                &cands(held_node),
                &topo,
                Capacity::new(&topo, &[], &[]),
                &cfg,
            );
            assert_eq!(
                (out[&a.key()].node, out[&b.key()].node),
                (Some(1), Some(0)),
                "held_node {held_node}: {out:?}"
            );
        }
    }

    /// Issue 21 review: a hinted node must have CPUs; a CPU-less node's free memory won the
    /// capacity score on a busy host and took a spread instance, strictly.
    #[test]
    fn no_instance_and_no_large_process_goes_to_a_cpu_less_node() {
        let cfg = Config::default().plan;
        let topo = with_cpu_less_node(topo2());
        let before: Vec<CpuTime> = (0..8)
            .map(|cpu| CpuTime {
                cpu,
                busy: 0,
                total: 0,
            })
            .collect();
        let busy: Vec<CpuTime> = (0..8)
            .map(|cpu| CpuTime {
                cpu,
                busy: 90,
                total: 100,
            })
            .collect();
        let d = decision("llm", true);
        let (a, b) = (
            with_numa(20, vec![900, 100, 0]),
            with_numa(21, vec![900, 100, 0]),
        );
        for after in [&before, &busy] {
            let mut planner = Planner::new();
            let cap = Capacity::new(&topo, &before, after);
            let out = planner.plan(&spread_cands(&[&a, &b], &d), &topo, cap, &cfg);
            assert!(out.values().all(|p| p.node != Some(2)), "{out:?}");
        }
        let mut large = test_proc(30, "db");
        large.rss_kib = 1 << 30;
        let mut planner = Planner::new();
        let cap = Capacity::new(&topo, &before, &busy);
        let plan = plan_with(&mut planner, &large, &decision("db", false), &topo, cap);
        assert_ne!(plan.node, Some(2), "{plan:?}");
    }

    /// Issue 21 review: when one of two instances restarts, the survivor stays on its node,
    /// held there, instead of turning soft (stock: affinity put back) and strict again.
    #[test]
    fn a_peer_restart_leaves_the_survivor_where_it_was_and_held() {
        let cfg = Config::default().plan;
        let topo = topo2();
        let mut planner = Planner::new();
        let d = decision("llm", true);
        let (a, b, b2) = (
            with_numa(20, vec![900, 100]),
            with_numa(21, vec![900, 100]),
            with_numa(23, vec![100, 900]),
        );
        let mut plan = |ps: &[&ProcObs]| {
            let out = planner.plan(
                &spread_cands(ps, &d),
                &topo,
                Capacity::new(&topo, &[], &[]),
                &cfg,
            );
            (out[&a.key()].node, out[&a.key()].strict)
        };
        let first = plan(&[&a, &b]);
        assert!(first.1);
        for _ in 0..5 {
            assert_eq!(plan(&[&a]), first, "peer gone");
        }
        assert_eq!(plan(&[&a, &b2]), first, "peer back");
    }

    /// Issue 21 review: a spread instance goes only to a node its cpuset lets it run on.
    #[test]
    fn a_spread_instance_goes_only_where_its_cpuset_allows() {
        let cfg = Config::default().plan;
        let topo = topo2();
        let d = decision("llm", true);
        let (a, b) = (with_numa(20, vec![900, 100]), with_numa(21, vec![900, 100]));
        let node1_only = CpuSet::from_list("4-7").unwrap();
        let none = CpuSet::from_list("8-9").unwrap();
        let procs = [&a, &b];
        let mut cands = spread_cands(&procs, &d);
        cands[0].allowed_cpus = Some(&node1_only);
        cands[1].allowed_cpus = Some(&node1_only);
        let out = Planner::new().plan(&cands, &topo, Capacity::new(&topo, &[], &[]), &cfg);
        assert_eq!(
            (out[&a.key()].node, out[&b.key()].node),
            (Some(1), Some(1)),
            "{out:?}"
        );
        cands[1].allowed_cpus = Some(&none);
        let out = Planner::new().plan(&cands, &topo, Capacity::new(&topo, &[], &[]), &cfg);
        assert_eq!(out[&a.key()].node, Some(1));
        assert_eq!(out[&b.key()].node, None, "{out:?}");
        assert!(out[&b.key()]
            .reason
            .contains("no node with CPUs its cpuset allows"));
    }
}
