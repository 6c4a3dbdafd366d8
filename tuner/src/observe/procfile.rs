//! Parsers for the per-process and per-thread procfs files a scan reads on every pass
//! (`stat`, `status`, `schedstat`), working on the raw bytes.
//!
//! A pass with threads reads a few thousand of these files. The `procfs` crate parses every
//! field of each (52 for `stat`, a map of every `status` line), checks the whole file is
//! UTF-8 first, and allocates on the way: that was close to half of a pass's user time. These
//! take only the fields the tuner uses, and only numbers are decoded.

use std::cell::RefCell;
use std::io::Read;
use std::str::FromStr;

use procfs::{FromRead, ProcError, ProcResult};

use super::CpuSet;

/// The bytes of a command line kept: rules, `explain` and the model's prompt see at most
/// this much (Documentation/tuner-trust-model.md). Anyone may start a process with a 2 MiB
/// command line; reading and keeping all of it for every such process cost a scan seconds
/// and the daemon hundreds of MiB.
pub const MAX_CMDLINE_BYTES: usize = 4096;
/// Arguments kept of a command line.
pub const MAX_CMDLINE_ARGS: usize = 64;

/// `/proc/<pid>/cmdline` split at NULs, read up to [`MAX_CMDLINE_BYTES`] and
/// [`MAX_CMDLINE_ARGS`]. A byte that is not UTF-8 becomes U+FFFD in its argument alone (a
/// whole-string conversion hid the entire command line from the rules). Empty when the file
/// cannot be read (kernel threads, a process that exited).
pub fn read_cmdline(path: &std::path::Path) -> Vec<String> {
    let Ok(f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut buf = Vec::with_capacity(256);
    if f.take(MAX_CMDLINE_BYTES as u64)
        .read_to_end(&mut buf)
        .is_err()
    {
        return Vec::new();
    }
    let buf = buf.strip_suffix(b"\0").unwrap_or(&buf);
    if buf.is_empty() {
        return Vec::new();
    }
    buf.split(|&b| b == 0)
        .take(MAX_CMDLINE_ARGS)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Reads to the end with plain `read` calls and hands the bytes to `parse`.
///
/// `File::read_to_end` first asks for the file's size and position (statx, lseek), two wasted
/// syscalls per procfs file, whose size is 0. A read that leaves room in the buffer has
/// returned the whole file: the kernel produces these small procfs files in one go, so no
/// extra call waits for end-of-file. The buffer is kept per thread and reused: a fresh
/// zeroed 4 KiB for each file was a visible share of a pass's CPU time.
pub(crate) fn with_contents<R: Read, T>(
    r: R,
    parse: impl FnOnce(&[u8]) -> T,
) -> std::io::Result<T> {
    thread_local! {
        static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            let len = fill(r, &mut buf)?;
            Ok(parse(&buf[..len]))
        }
        // Taken by an outer call (a `parse` that reads a file itself): use a buffer of its own.
        Err(_) => {
            let mut buf = Vec::new();
            let len = fill(r, &mut buf)?;
            Ok(parse(&buf[..len]))
        }
    })
}

/// Reads `r` to the end into `buf` (grown as needed, never shrunk); returns the length read.
fn fill<R: Read>(mut r: R, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    if buf.is_empty() {
        buf.resize(4096, 0);
    }
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match r.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => {
                len += n;
                if len < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

/// A decimal number from ASCII bytes; `None` for anything else.
fn num<T: FromStr>(bytes: &[u8]) -> Option<T> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The whitespace-separated words of `bytes`.
fn words(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    bytes
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
}

/// The first whitespace-separated word of `bytes`.
fn first_word(bytes: &[u8]) -> &[u8] {
    words(bytes).next().unwrap_or_default()
}

/// The five fields of `/proc/<pid>/status` the tuner uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusLite {
    pub euid: u32,
    pub vmrss_kib: u64,
    pub cpus_allowed: Option<CpuSet>,
    pub nvcsw: u64,
    pub nivcsw: u64,
}

impl StatusLite {
    /// Lines it does not use, or cannot decode, are skipped: `Name:` may hold any bytes.
    pub fn parse(text: &[u8]) -> Self {
        let mut s = StatusLite::default();
        for line in text.split(|&b| b == b'\n') {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (key, value) = (&line[..colon], &line[colon + 1..]);
            match key {
                b"Uid" => s.euid = words(value).nth(1).and_then(num).unwrap_or(0),
                b"VmRSS" => s.vmrss_kib = num(first_word(value)).unwrap_or(0),
                b"Cpus_allowed_list" => {
                    s.cpus_allowed = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| CpuSet::from_list(v).ok())
                }
                b"voluntary_ctxt_switches" => s.nvcsw = num(first_word(value)).unwrap_or(0),
                b"nonvoluntary_ctxt_switches" => s.nivcsw = num(first_word(value)).unwrap_or(0),
                _ => {}
            }
        }
        s
    }
}

impl FromRead for StatusLite {
    fn from_read<R: Read>(r: R) -> ProcResult<Self> {
        Ok(with_contents(r, StatusLite::parse)?)
    }
}

/// A `stat` line cut after `comm`, whose fields are then read in increasing order.
struct StatFields<'a> {
    comm: &'a [u8],
    rest: std::slice::Split<'a, u8, fn(&u8) -> bool>,
    /// The number (1-based, as proc(5) has it) of the next field `rest` yields.
    next: usize,
}

impl<'a> StatFields<'a> {
    fn new(text: &'a [u8]) -> Option<Self> {
        // `comm` may hold spaces, parentheses, any bytes: it runs from the first `(` to the
        // last `)`, and the fields after it start with field 3 (state).
        let open = text.iter().position(|&b| b == b'(')?;
        let close = text.iter().rposition(|&b| b == b')')?;
        let sep: fn(&u8) -> bool = |&b| b == b' ' || b == b'\n';
        Some(StatFields {
            comm: text.get(open + 1..close)?,
            rest: text.get(close + 2..)?.split(sep),
            next: 3,
        })
    }

    /// Field `n`, which must come after the last one asked for.
    fn field(&mut self, n: usize) -> Option<&'a [u8]> {
        let f = self.rest.nth(n.checked_sub(self.next)?);
        self.next = n + 1;
        f
    }

    /// A required numeric field.
    fn num<T: FromStr>(&mut self, n: usize) -> Option<T> {
        num(self.field(n)?)
    }

    /// RT priority and policy came in 2.5.19: where missing they read as 0, as the `procfs`
    /// crate's `Stat` has it; present and malformed is `None`.
    fn optional_u32(&mut self, n: usize) -> Option<u32> {
        match self.field(n) {
            None | Some(b"") => Some(0),
            Some(v) => num(v),
        }
    }

    /// Nice, field 19.
    fn nice(&mut self) -> Option<i32> {
        Some(self.num::<i64>(19)? as i32)
    }

    /// RT priority and policy (fields 40, 41), with `nice` read before them.
    fn sched(&mut self, nice: i32) -> Option<StatSched> {
        let rt_priority = self.optional_u32(40)?;
        let policy = self.optional_u32(41)?;
        Some(StatSched {
            policy,
            nice,
            rt_priority,
        })
    }
}

/// Policy, nice and RT priority from a `stat` line: all a thread's attributes need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatSched {
    pub policy: u32,
    pub nice: i32,
    pub rt_priority: u32,
}

impl StatSched {
    /// `None` where a field it needs is missing or malformed.
    pub fn parse(text: &[u8]) -> Option<Self> {
        let mut f = StatFields::new(text)?;
        let nice = f.nice()?;
        f.sched(nice)
    }
}

impl FromRead for StatSched {
    fn from_read<R: Read>(r: R) -> ProcResult<Self> {
        with_contents(r, StatSched::parse)?.ok_or_else(|| ProcError::Other("malformed stat".into()))
    }
}

/// The fields of `/proc/<pid>/stat` the tuner uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatLite {
    pub comm: String,
    pub ppid: i32,
    /// Session id: the autogroup a process is in, where autogroups are on.
    pub session: i32,
    pub flags: u32,
    pub utime: u64,
    pub stime: u64,
    pub num_threads: i64,
    pub starttime: u64,
    /// Resident pages.
    pub rss: u64,
    pub sched: StatSched,
}

impl StatLite {
    /// `None` where a field it needs is missing or malformed.
    pub fn parse(text: &[u8]) -> Option<Self> {
        let mut f = StatFields::new(text)?;
        let ppid = f.num(4)?;
        let session = f.num(6)?;
        let flags = f.num(9)?;
        let utime = f.num(14)?;
        let stime = f.num(15)?;
        // Fields are read in order: nice (19) comes before num_threads, the rest of the
        // scheduling fields (40, 41) after rss.
        let nice = f.nice()?;
        let num_threads = f.num(20)?;
        let starttime = f.num(22)?;
        let rss = f.num(24)?;
        let sched = f.sched(nice)?;
        Some(StatLite {
            comm: String::from_utf8_lossy(f.comm).into_owned(),
            ppid,
            session,
            flags,
            utime,
            stime,
            num_threads,
            starttime,
            rss,
            sched,
        })
    }
}

impl FromRead for StatLite {
    fn from_read<R: Read>(r: R) -> ProcResult<Self> {
        with_contents(r, StatLite::parse)?.ok_or_else(|| ProcError::Other("malformed stat".into()))
    }
}

/// A `schedstat` file's first two fields: time on a CPU and run delay (time spent runnable,
/// waiting for a CPU), in ns. A thread's CPU time in ns comes free with the run delay,
/// where its `stat` would cost another file and give only clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedStat {
    pub on_cpu_ns: u64,
    pub run_delay_ns: u64,
}

impl SchedStat {
    pub fn parse(text: &[u8]) -> Option<Self> {
        let mut w = words(text);
        let on_cpu_ns = num(w.next()?)?;
        let run_delay_ns = num(w.next()?)?;
        Some(SchedStat {
            on_cpu_ns,
            run_delay_ns,
        })
    }
}

impl FromRead for SchedStat {
    fn from_read<R: Read>(r: R) -> ProcResult<Self> {
        with_contents(r, SchedStat::parse)?
            .ok_or_else(|| ProcError::Other("malformed schedstat".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use procfs::process::{Schedstat, Stat};

    #[test]
    fn status_lite_reads_the_fields_it_needs() {
        let text = "Name:\tx\nUid:\t1000\t1001\t1000\t1000\nVmRSS:\t  4242 kB\nCpus_allowed_list:\t0-3,6\n\
                    voluntary_ctxt_switches:\t77\nnonvoluntary_ctxt_switches:\t5\n";
        let s = StatusLite::parse(text.as_bytes());
        assert_eq!(
            (s.euid, s.vmrss_kib, s.nvcsw, s.nivcsw),
            (1001, 4242, 77, 5)
        );
        assert_eq!(s.cpus_allowed.as_ref().unwrap().to_string(), "0-3,6");
        assert_eq!(
            StatusLite::parse(b"Name:\tkthread\n"),
            StatusLite::default()
        );
        // A name that is not UTF-8 costs nothing else.
        let odd = [b"Name:\t\xff\xfe:x\n".as_slice(), text.as_bytes()].concat();
        assert_eq!(StatusLite::parse(&odd), s);
    }

    fn stat_of(text: &str) -> StatLite {
        let s = Stat::from_read(text.as_bytes()).expect("procfs parses it");
        StatLite {
            comm: s.comm,
            ppid: s.ppid,
            session: s.session,
            flags: s.flags,
            utime: s.utime,
            stime: s.stime,
            num_threads: s.num_threads,
            starttime: s.starttime,
            rss: s.rss,
            sched: StatSched {
                policy: s.policy.unwrap_or(0),
                nice: s.nice as i32,
                rt_priority: s.rt_priority.unwrap_or(0),
            },
        }
    }

    #[test]
    fn stat_lite_agrees_with_the_full_stat() {
        let full = crate::observe::synthetic::stat_line(7, "a) (b c", 0x40_0100, 50, -5, 3, 9);
        let rt = full.replace(" 17 0 0 0 ", " 17 0 42 1 ");
        // A kernel before 2.5.19: no RT priority or policy.
        let old = full.split(' ').take(41).collect::<Vec<_>>().join(" ") + "\n";
        for text in [&full, &rt, &old] {
            assert_eq!(
                StatLite::parse(text.as_bytes()),
                Some(stat_of(text)),
                "{text}"
            );
        }
        // A thread's attributes read the same three fields alone.
        for text in [&full, &rt, &old] {
            let lite = StatLite::parse(text.as_bytes()).map(|s| s.sched);
            assert_eq!(StatSched::parse(text.as_bytes()), lite, "{text}");
        }
        let rt = StatLite::parse(rt.as_bytes()).unwrap();
        assert_eq!(
            (rt.sched.policy, rt.sched.nice, rt.sched.rt_priority),
            (1, -5, 42)
        );
        assert_eq!((rt.utime, rt.stime, rt.num_threads, rt.rss), (45, 5, 3, 9));
    }

    #[test]
    fn stat_lite_refuses_what_it_cannot_read() {
        let full = crate::observe::synthetic::stat_line(7, "x", 0x40_0100, 50, 0, 1, 9);
        assert_eq!(StatLite::parse(b"7 (x) S 1 2"), None);
        assert_eq!(StatLite::parse(b"no parentheses"), None);
        assert_eq!(
            StatLite::parse(
                full.replace(" 20 0 1 0 1007 ", " 20 0 x 0 1007 ")
                    .as_bytes()
            ),
            None
        );
        assert!(StatLite::parse(full.as_bytes()).is_some());
        // Field 41, the policy ("x" is one word here, so fields and words line up).
        let mut words: Vec<&str> = full.split(' ').collect();
        words[40] = "x";
        assert_eq!(StatLite::parse(words.join(" ").as_bytes()), None);
        assert_eq!(StatSched::parse(words.join(" ").as_bytes()), None);
        assert_eq!(
            StatSched::parse(full.replace(" 20 0 1 ", " 20 x 1 ").as_bytes()),
            None
        );
        // A comm that is not UTF-8 still gives the numbers.
        let odd = [
            b"7 (\xff) ".as_slice(),
            full.split_once(") ").unwrap().1.as_bytes(),
        ]
        .concat();
        assert_eq!(StatLite::parse(&odd).map(|s| s.starttime), Some(1007));
    }

    #[test]
    fn schedstat_gives_cpu_time_and_run_delay() {
        let text = "123456 7890 12\n";
        let full = Schedstat::from_read(text.as_bytes()).unwrap();
        assert_eq!(
            SchedStat::parse(text.as_bytes()),
            Some(SchedStat {
                on_cpu_ns: full.sum_exec_runtime,
                run_delay_ns: full.run_delay
            })
        );
        assert_eq!(SchedStat::parse(b"123456\n"), None);
        assert_eq!(SchedStat::parse(b"1 x 3\n"), None);
    }

    #[test]
    fn reused_read_buffer_gives_each_read_its_own_bytes() {
        let long = "x".repeat(10_000);
        let read = |t: &str| with_contents(t.as_bytes(), |b| b.to_vec()).unwrap();
        assert_eq!(read(&long), long.as_bytes());
        assert_eq!(read("short"), b"short");
        let nested = with_contents("outer".as_bytes(), |b| (b.to_vec(), read("inner")));
        assert_eq!(nested.unwrap(), (b"outer".to_vec(), b"inner".to_vec()));
    }

    /// Issue 20, reproductions 6 and 7: a 1 MiB command line is kept to its first 4 KiB, and
    /// a byte that is not UTF-8 spoils only its own argument.
    #[test]
    fn command_lines_are_bounded_and_lossy_per_argument() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cmdline");
        std::fs::write(&p, b"/usr/bin/python3\0caf\xe9.py\0--serve\0").unwrap();
        assert_eq!(
            read_cmdline(&p),
            ["/usr/bin/python3", "caf\u{fffd}.py", "--serve"]
        );
        let mut huge = b"x\0".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 1 << 20));
        std::fs::write(&p, &huge).unwrap();
        let args = read_cmdline(&p);
        assert_eq!(args.len(), 2);
        // "x", its NUL, then "a" up to the bound
        assert_eq!(
            args.iter().map(String::len).sum::<usize>(),
            MAX_CMDLINE_BYTES - 1
        );
        std::fs::write(&p, "a\0".repeat(1000)).unwrap();
        assert_eq!(read_cmdline(&p).len(), MAX_CMDLINE_ARGS);
        std::fs::write(&p, b"").unwrap();
        assert!(read_cmdline(&p).is_empty());
        assert!(read_cmdline(&dir.path().join("gone")).is_empty());
    }
}
