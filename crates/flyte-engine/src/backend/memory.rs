//! Memory limits of local task processes.
//!
//! A task's memory limit is enforced on its process group: its anonymous resident memory
//! (what the kernel cannot reclaim without killing; file pages are left out, as a memory
//! cgroup reclaims them before it OOM-kills) is sampled every [`SAMPLE_EVERY`], and a group
//! above its limit is killed with SIGKILL and reported as `OOMKilled`, as propeller reports a
//! container the kernel killed at its cgroup's limit. Pages shared copy-on-write between
//! processes (warm workers fork from one interpreter) count proportionally. Sampling can miss an allocation that
//! rises and falls between two samples; a process that leaves the group (`setsid`) is not
//! counted.
//!
//! This is the fallback: where the host lets flyte-rs make memory cgroups, the kernel holds
//! each attempt to its limit instead ([`super::cgroup`]) and nothing is sampled.

use std::time::Duration;

/// How often a limited task's memory is looked at.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// The anonymous resident memory, in bytes, of the processes in group `pgid`.
pub fn group_memory(pgid: i32) -> u64 {
    // SAFETY: sysconf only reads a constant of the system.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
    for entry in procs.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command: state, ppid, pgrp, …
        let pgrp = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(2)?.parse::<i32>().ok());
        if pgrp != Some(pgid) {
            continue;
        }
        // Anonymous memory shared copy-on-write (a warm worker's reaper and task share the
        // interpreter they were forked from, super::warm) is counted once, split among its
        // sharers: the proportional set size of the anonymous pages.
        if let Some(pss) = pss_anon(pid) {
            total += pss;
            continue;
        }
        // statm: size resident shared …, in pages; resident - shared is the anonymous part.
        let Ok(statm) = std::fs::read_to_string(format!("/proc/{pid}/statm")) else {
            continue;
        };
        let mut fields = statm.split_whitespace().skip(1);
        let resident: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let shared: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        total += resident.saturating_sub(shared) * page;
    }
    total
}

/// `Pss_Anon` of `/proc/<pid>/smaps_rollup` in bytes (Linux 5.x and later).
fn pss_anon(pid: &str) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let line = rollup.lines().find(|l| l.starts_with("Pss_Anon:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resolves, with the usage seen, once group `pgid` uses more than `limit` bytes.
pub async fn exceeded(pgid: i32, limit: u64) -> u64 {
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let used = tokio::task::spawn_blocking(move || group_memory(pgid))
            .await
            .unwrap_or(0);
        if used > limit {
            return used;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_groups_memory_is_counted() {
        // SAFETY: getpgrp only reads.
        let own = unsafe { libc::getpgrp() };
        let block = vec![1u8; 64 << 20];
        let used = group_memory(own);
        assert!(used >= 64 << 20, "{used}");
        drop(block);
        assert_eq!(group_memory(i32::MAX), 0);
    }
}
