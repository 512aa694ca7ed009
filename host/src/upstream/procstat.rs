//! Resource use of a child's process group, from `/proc`.
//!
//! A stdio upstream runs in its own process group (see [`super::stdio`]);
//! wrappers such as `npx` or `uvx` put the real server in a grandchild, so
//! the figures sum over the whole group, which is what the operator pays for.
//! Written by hand: it is two `/proc` files, and the crates that read them
//! (procfs, sysinfo) bring far more than this needs.

use std::sync::OnceLock;

/// The summed use of one process group.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct GroupUsage {
    /// Live processes in the group.
    pub processes: usize,
    /// Resident memory, in bytes.
    pub rss_bytes: u64,
    /// User + system CPU time, in seconds.
    pub cpu_seconds: f64,
}

/// The fields of `/proc/PID/stat` this module reads.
#[derive(Debug, PartialEq)]
struct Stat {
    pgrp: u32,
    /// In clock ticks.
    cpu_ticks: u64,
    /// In pages.
    rss_pages: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) may contain spaces
/// and parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: state(3) ppid(4) pgrp(5) … utime(14) stime(15) … rss(24).
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(Stat {
        pgrp: u32::try_from(field(5)?).ok()?,
        cpu_ticks: field(14)? + field(15)?,
        rss_pages: field(24)?,
    })
}

fn page_size() -> u64 {
    static SIZE: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf reads a system constant and touches no memory of ours.
    *SIZE
        .get_or_init(|| u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096))
}

fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    // SAFETY: as above.
    *TICKS.get_or_init(|| {
        u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
            .ok()
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// The use of process group `pgid` (a child's pid, as children lead their
/// own group), or `None` where `/proc` is not available.
pub fn group_usage(pgid: u32) -> Option<GroupUsage> {
    let dir = std::fs::read_dir("/proc").ok()?;
    let mut usage = GroupUsage::default();
    let mut ticks = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(stat) = parse_stat(&text)
            && stat.pgrp == pgid
        {
            usage.processes += 1;
            usage.rss_bytes += stat.rss_pages * page_size();
            ticks += stat.cpu_ticks;
        }
    }
    usage.cpu_seconds = ticks as f64 / ticks_per_second() as f64;
    Some(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (odd) name)) S 1 4240 4240 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 100 1000000 250 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                pgrp: 4240,
                cpu_ticks: 10,
                rss_pages: 250
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn our_own_group_is_found() {
        // SAFETY: getpgrp has no preconditions.
        let pgid = u32::try_from(unsafe { libc::getpgrp() }).unwrap();
        let u = group_usage(pgid).unwrap();
        assert!(u.processes >= 1, "{u:?}");
        assert!(u.rss_bytes > 0, "{u:?}");
    }
}
