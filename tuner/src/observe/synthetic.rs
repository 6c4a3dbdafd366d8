//! A synthetic host written as a procfs/sysfs-like tree, for the benchmark and for tests that
//! need counters to move between scans. Files follow the kernel's formats closely enough for
//! the `procfs` crate; every value is derived from a seed, so runs are repeatable.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory removed (with its contents) on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub fn new(tag: &str) -> io::Result<Self> {
        Self::under(&std::env::temp_dir(), tag)
    }

    /// In `/dev/shm` where it can be made, else as [`ScratchDir::new`]. For trees that stand
    /// in for procfs: on a disk file system, rewriting the counters between passes starts
    /// writeback (ext4 flushes a truncated-and-rewritten file on close) that lands in the
    /// timed passes, a cost `/proc` never has.
    pub fn in_memory(tag: &str) -> io::Result<Self> {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            if let Ok(dir) = Self::under(shm, tag) {
                return Ok(dir);
            }
        }
        Self::new(tag)
    }

    fn under(parent: &Path, tag: &str) -> io::Result<Self> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "tuner-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = parent.join(name);
        fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// How a synthetic process behaves between scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    Idle,
    Interactive,
    CpuBound,
    Server,
    /// Always runnable, but held to a third of a CPU by the others on its CPU: it waits on the
    /// runqueue twice as long as it runs (`yes` beside two CPU hogs on one core).
    Contended,
}

#[derive(Debug, Clone)]
pub struct SynthProc {
    pub pid: i32,
    pub comm: String,
    pub threads: u32,
    pub profile: Profile,
    pub kthread: bool,
    pub nice: i32,
    /// Real and effective uid, written to `status` at every [`SyntheticHost::advance`].
    pub uid: u32,
    pub rss_kib: u64,
    /// Resident KiB per node.
    pub numa_kib: Vec<u64>,
    ticks: u64,
    nvcsw: u64,
    nivcsw: u64,
    run_delay_ns: u64,
}

/// Named programs mixed into the synthetic population (rule hits), then anonymous ones.
const NAMED: [&str; 16] = [
    "rustc",
    "cc1",
    "nginx",
    "postgres",
    "redis-server",
    "pipewire",
    "sshd",
    "Xorg",
    "rsync",
    "updatedb",
    "ffmpeg",
    "llama-server",
    "firefox",
    "make",
    "bash",
    "systemd",
];

pub struct SyntheticHost {
    dir: ScratchDir,
    pub procs: Vec<SynthProc>,
    pub nodes: u32,
    pub cpus_per_node: u32,
    rng: u64,
}

impl SyntheticHost {
    /// `nprocs` processes (a sixth of them kernel threads) on `nodes` nodes.
    pub fn build(nprocs: usize, nodes: u32, cpus_per_node: u32) -> io::Result<Self> {
        let dir = ScratchDir::in_memory("synthetic")?;
        let mut host = SyntheticHost {
            dir,
            procs: Vec::with_capacity(nprocs),
            nodes: nodes.max(1),
            cpus_per_node: cpus_per_node.max(1),
            rng: 0x9e37_79b9_7f4a_7c15,
        };
        for i in 0..nprocs {
            let pid = 100 + i as i32;
            let r = host.next();
            let kthread = i % 6 == 5;
            let comm = if kthread {
                format!("kworker/{}:{}", i % 8, i % 3)
            } else if r % 3 == 0 {
                NAMED[(r / 3) as usize % NAMED.len()].to_owned()
            } else {
                format!("app{}", r % 997)
            };
            let profile = match host.next() % 10 {
                0..=4 => Profile::Idle,
                5 | 6 => Profile::Interactive,
                7 => Profile::CpuBound,
                _ => Profile::Server,
            };
            let threads = if kthread {
                1
            } else {
                1 + (host.next() % 4) as u32
            };
            let rss_kib = if kthread {
                0
            } else {
                4_096 + (host.next() % 200) * 1_024 * if i % 50 == 0 { 40 } else { 1 }
            };
            let mut numa_kib = vec![0; host.nodes as usize];
            for (n, slot) in numa_kib.iter_mut().enumerate() {
                *slot = rss_kib / u64::from(host.nodes)
                    + if n == i % host.nodes as usize {
                        rss_kib / 3
                    } else {
                        0
                    };
            }
            let nice = if !kthread && host.next() % 25 == 0 {
                5
            } else {
                0
            };
            host.procs.push(SynthProc {
                pid,
                comm,
                threads,
                profile,
                kthread,
                nice,
                uid: 1000,
                rss_kib,
                numa_kib,
                ticks: 0,
                nvcsw: 0,
                nivcsw: 0,
                run_delay_ns: 0,
            });
        }
        host.write_static()?;
        host.write_dynamic()?;
        Ok(host)
    }

    fn next(&mut self) -> u64 {
        // xorshift64*: cheap, repeatable, good enough for a synthetic population.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 16
    }

    pub fn proc_root(&self) -> PathBuf {
        self.dir.path().join("proc")
    }

    pub fn sys_root(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    /// Moves every counter as `ms` of each process's profile would, and rewrites the files.
    pub fn advance(&mut self, ms: u64) -> io::Result<()> {
        let s = ms as f64 / 1000.0;
        for p in &mut self.procs {
            let threads = f64::from(p.threads);
            let (cpu_frac, vol_per_s, invol_per_s) = match p.profile {
                Profile::Idle => (0.0, 0.5, 0.0),
                Profile::Interactive => (0.05, 200.0, 5.0),
                Profile::CpuBound => (0.98 * threads, 2.0, 50.0),
                Profile::Server => (0.4 * threads, 400.0, 40.0),
                Profile::Contended => (0.33 * threads, 0.5, 300.0),
            };
            // Time runnable but waiting for a CPU, as a share of the interval.
            let wait_frac = match p.profile {
                Profile::Contended => 0.67 * threads,
                _ => cpu_frac * 0.05,
            };
            if p.kthread {
                continue;
            }
            p.ticks += (cpu_frac * s * 100.0) as u64;
            p.nvcsw += (vol_per_s * s) as u64;
            p.nivcsw += (invol_per_s * s) as u64;
            p.run_delay_ns += (wait_frac * s * 1e9) as u64;
        }
        self.write_dynamic()
    }

    fn write_static(&self) -> io::Result<()> {
        let sys = self.sys_root();
        let ncpu = self.nodes * self.cpus_per_node;
        write(
            &sys.join("devices/system/cpu/online"),
            &format!("0-{}\n", ncpu - 1),
        )?;
        write(
            &sys.join("devices/system/node/online"),
            &format!("0-{}\n", self.nodes - 1),
        )?;
        for n in 0..self.nodes {
            let base = sys.join(format!("devices/system/node/node{n}"));
            let lo = n * self.cpus_per_node;
            write(
                &base.join("cpulist"),
                &format!("{lo}-{}\n", lo + self.cpus_per_node - 1),
            )?;
            let dist: Vec<String> = (0..self.nodes)
                .map(|m| if m == n { "10" } else { "21" }.to_owned())
                .collect();
            write(&base.join("distance"), &(dist.join(" ") + "\n"))?;
            write(
                &base.join("meminfo"),
                &format!(
                    "Node {n} MemTotal:       33554432 kB\nNode {n} MemFree:        {} kB\n",
                    16_000_000 + u64::from(n) * 1_000_000
                ),
            )?;
        }
        let proc_root = self.proc_root();
        let mut stat = String::from("cpu  0 0 0 0 0 0 0 0 0 0\n");
        for c in 0..ncpu {
            let _ = writeln!(
                stat,
                "cpu{c} {} 0 100 {} 0 0 0 0 0 0",
                1000 + c * 10,
                9000 - c * 10
            );
        }
        write(&proc_root.join("stat"), &stat)?;
        for p in &self.procs {
            let dir = proc_root.join(p.pid.to_string());
            fs::create_dir_all(&dir)?;
            let cmdline = if p.kthread {
                String::new()
            } else {
                format!("/usr/bin/{}\0--serve\0", p.comm)
            };
            write(&dir.join("cmdline"), &cmdline)?;
            write(&dir.join("cgroup"), "0::/system.slice/synthetic.service\n")?;
            if !p.kthread {
                let _ = fs::remove_file(dir.join("exe"));
                symlink(format!("/usr/bin/{}", p.comm), dir.join("exe"))?;
                let mut maps = String::new();
                let mut line = String::from("7f0000000000 default anon=1");
                for (n, kib) in p.numa_kib.iter().enumerate() {
                    let _ = write!(line, " N{n}={}", kib / 4);
                }
                let _ = writeln!(maps, "{line} kernelpagesize_kB=4");
                write(&dir.join("numa_maps"), &maps)?;
            }
        }
        Ok(())
    }

    fn write_dynamic(&self) -> io::Result<()> {
        let proc_root = self.proc_root();
        let ncpu = self.nodes * self.cpus_per_node;
        for p in &self.procs {
            let dir = proc_root.join(p.pid.to_string());
            let t = f64::from(p.threads.max(1));
            let share = |v: u64| (v as f64 / t) as u64;
            let flags = if p.kthread { 0x0020_8040 } else { 0x0040_0100 };
            let rss_pages = p.rss_kib / 4;
            write(
                &dir.join("stat"),
                &stat_line(p.pid, &p.comm, flags, p.ticks, p.nice, p.threads, rss_pages),
            )?;
            let task0 = TaskCounters {
                tid: p.pid,
                nvcsw: share(p.nvcsw),
                nivcsw: share(p.nivcsw),
            };
            write(&dir.join("status"), &status_text(p, &task0, ncpu))?;
            write(
                &dir.join("schedstat"),
                &format!(
                    "{} {} {}\n",
                    p.ticks * 10_000_000,
                    share(p.run_delay_ns),
                    share(p.nvcsw + p.nivcsw)
                ),
            )?;
            write(
                &dir.join("sched"),
                "se.slice                                     :              2800000\n",
            )?;
            if p.threads > 1 {
                for k in 0..p.threads {
                    let tid = if k == 0 {
                        p.pid
                    } else {
                        100_000 + p.pid * 8 + k as i32
                    };
                    let tdir = dir.join("task").join(tid.to_string());
                    let tc = TaskCounters {
                        tid,
                        nvcsw: share(p.nvcsw),
                        nivcsw: share(p.nivcsw),
                    };
                    write(
                        &tdir.join("stat"),
                        &stat_line(
                            tid,
                            &p.comm,
                            flags,
                            share(p.ticks),
                            p.nice,
                            p.threads,
                            rss_pages,
                        ),
                    )?;
                    write(&tdir.join("status"), &status_text(p, &tc, ncpu))?;
                    write(
                        &tdir.join("schedstat"),
                        &format!(
                            "{} {} {}\n",
                            share(p.ticks) * 10_000_000,
                            share(p.run_delay_ns),
                            tc.nvcsw + tc.nivcsw
                        ),
                    )?;
                    write(
                        &tdir.join("sched"),
                        "se.slice                                     :              2800000\n",
                    )?;
                }
            }
        }
        Ok(())
    }
}

struct TaskCounters {
    tid: i32,
    nvcsw: u64,
    nivcsw: u64,
}

fn write(path: &Path, text: &str) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, text)
}

/// A `/proc/<pid>/stat` line with the 52 fields of current kernels.
pub fn stat_line(
    pid: i32,
    comm: &str,
    flags: u32,
    ticks: u64,
    nice: i32,
    threads: u32,
    rss_pages: u64,
) -> String {
    let (utime, stime) = (ticks * 9 / 10, ticks - ticks * 9 / 10);
    format!(
        "{pid} ({comm}) S 1 {pid} {pid} 0 -1 {flags} 100 0 0 0 {utime} {stime} 0 0 {prio} {nice} {threads} 0 {start} 10000000 {rss_pages} \
         18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
        prio = 20 + nice,
        start = 1000 + pid,
    )
}

fn status_text(p: &SynthProc, t: &TaskCounters, ncpu: u32) -> String {
    format!(
        "Name:\t{comm}\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{pid}\nNgid:\t0\nPid:\t{tid}\nPPid:\t1\nTracerPid:\t0\n\
         Uid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{uid}\t{uid}\t{uid}\t{uid}\nFDSize:\t64\nGroups:\t \nVmRSS:\t{rss} kB\n\
         Threads:\t{threads}\nSigQ:\t0/63556\nSigPnd:\t0000000000000000\nShdPnd:\t0000000000000000\n\
         SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000000000\n\
         CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n\
         CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t0\n\
         Cpus_allowed_list:\t0-{last}\nMems_allowed_list:\t0\nvoluntary_ctxt_switches:\t{vol}\n\
         nonvoluntary_ctxt_switches:\t{invol}\n",
        comm = p.comm,
        uid = p.uid,
        pid = p.pid,
        tid = t.tid,
        rss = p.rss_kib,
        threads = p.threads,
        last = ncpu - 1,
        vol = t.nvcsw,
        invol = t.nivcsw,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::procfs::ProcfsSource;
    use crate::observe::sysfs::SysfsSource;
    use crate::observe::{ProcSource, ScanOptions, SysSource};

    #[test]
    fn synthetic_tree_reads_back_through_procfs() {
        let mut host = SyntheticHost::build(60, 2, 4).unwrap();
        let mut src = ProcfsSource::new(host.proc_root());
        let opts = ScanOptions {
            threads: true,
            numa_min_rss_kib: Some(0),
            refresh_static: false,
            wait_channels: None,
        };
        let procs = src.scan(&opts).unwrap();
        assert_eq!(procs.len(), 60);
        assert_eq!(procs.iter().filter(|p| p.kthread).count(), 10);
        let multi = procs
            .iter()
            .find(|p| p.nr_threads > 1)
            .expect("some multi-threaded process");
        assert_eq!(multi.tasks.len() as u32, multi.nr_threads);
        let user = procs.iter().find(|p| !p.kthread).unwrap();
        assert_eq!(user.uid, 1000);
        assert_eq!(user.numa_kib.as_ref().map(Vec::len), Some(2));
        assert_eq!(user.tasks[0].slice_ns, Some(2_800_000));
        assert!(user.exe.as_ref().unwrap().ends_with(&user.comm));

        host.advance(1000).unwrap();
        let later = src.scan(&opts).unwrap();
        let busy = host
            .procs
            .iter()
            .find(|p| p.profile == Profile::CpuBound && !p.kthread)
            .unwrap();
        let before = procs.iter().find(|p| p.pid == busy.pid).unwrap();
        let after = later.iter().find(|p| p.pid == busy.pid).unwrap();
        assert!(after.cpu_ns > before.cpu_ns);

        let topo = SysfsSource::new(host.sys_root()).topology().unwrap();
        assert_eq!(topo.nodes.len(), 2);
        assert_eq!(topo.nodes[1].cpus.to_string(), "4-7");
        assert_eq!(src.cpu_times().unwrap().len(), 8);
    }
}
