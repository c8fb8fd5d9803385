//! Kernel-enforced memory limits for local task processes: one memory cgroup per attempt.
//!
//! Where the host lets this server make memory cgroups, each attempt with a memory limit gets
//! its own cgroup under a parent of this server's (`<server's cgroup>/flyte-rs-tasks-<id>`),
//! with the limit as `memory.max` (v2) or `memory.limit_in_bytes` (v1), as a pod's container
//! gets one. The attempt's first process (the shell wrapper, or a warm worker's reaper) is
//! moved into it while it still waits for the server's go byte, before the task is started,
//! so that everything the task forks is in it from its first instruction. The kernel then
//! holds the task to its limit however fast it allocates, and kills it there; the cgroup's
//! `oom_kill` counter (v2 `memory.events`, v1 `memory.oom_control`) says that it did.
//!
//! Detected once at start ([`detect`]): cgroup v2 with the memory controller available to the
//! server's cgroup, else a writable v1 memory hierarchy, else none (limits are then enforced
//! by sampling, [`super::memory`]). v1: only `memory.limit_in_bytes` is set, not
//! `memory.memsw.limit_in_bytes` (with swap, a task may swap past its limit, as on a v1 node
//! whose kubelet leaves swap alone).
//!
//! An attempt's cgroup is named by the attempt ([`cgroup_name`]), so a server that restarts
//! finds the cgroup of a task still running and follows its kernel-kept limit.

use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `engine.memory_limits`: how task memory limits are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryLimitMode {
    /// A cgroup per attempt where the host offers one, else sampling.
    #[default]
    Auto,
    /// A cgroup per attempt; the server refuses to start if it cannot make them.
    Cgroup,
    /// Sampling the task's resident memory (never cgroups).
    Sampling,
}

/// Which cgroup interface the attempt cgroups use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// What enforces memory limits on this host, decided once at start.
#[derive(Debug, Clone)]
pub enum Enforcement {
    /// A cgroup per attempt under this parent.
    Cgroup(TaskCgroups),
    /// Sampling; why no cgroup is used.
    Sampling(String),
}

impl Enforcement {
    /// In words, for the start-up log line (`memory_limits=…`).
    pub fn describe(&self) -> String {
        match self {
            Enforcement::Cgroup(c) => format!(
                "cgroup {}: the kernel enforces each task's memory limit (one cgroup per \
                 attempt under {})",
                match c.version {
                    Version::V1 => "v1",
                    Version::V2 => "v2",
                },
                c.parent.display()
            ),
            Enforcement::Sampling(why) => {
                format!("sampling: {why}; limits are enforced by sampling each task's memory")
            }
        }
    }

    pub fn cgroups(&self) -> Option<&TaskCgroups> {
        match self {
            Enforcement::Cgroup(c) => Some(c),
            Enforcement::Sampling(_) => None,
        }
    }
}

/// Decides how memory limits are enforced: `cgroup_root` is where cgroups are mounted
/// (`/sys/fs/cgroup`), `self_cgroup` the text of `/proc/self/cgroup`, `tag` what tells this
/// server's parent cgroup from another server's (see [`parent_name`]). `Err` only for
/// [`MemoryLimitMode::Cgroup`] on a host that offers none, with the reason.
pub fn detect(
    mode: MemoryLimitMode,
    cgroup_root: &Path,
    self_cgroup: &str,
    tag: &str,
) -> Result<Enforcement, String> {
    if mode == MemoryLimitMode::Sampling {
        return Ok(Enforcement::Sampling(
            "engine.memory_limits = \"sampling\"".into(),
        ));
    }
    let found = detect_v2(cgroup_root, self_cgroup, tag)
        .or_else(|v2| detect_v1(cgroup_root, self_cgroup, tag).map_err(|v1| format!("{v2}; {v1}")));
    match (found, mode) {
        (Ok(cgroups), _) => Ok(Enforcement::Cgroup(cgroups)),
        (Err(why), MemoryLimitMode::Cgroup) => Err(format!(
            "engine.memory_limits = \"cgroup\", but this host offers no memory cgroup flyte-rs \
             can use ({why}); run flyte-rs where it may create memory cgroups (as root, or in \
             a cgroup v2 subtree delegated to it), or set engine.memory_limits to \"auto\" or \
             \"sampling\""
        )),
        (Err(why), _) => Ok(Enforcement::Sampling(why)),
    }
}

/// The parent cgroup's name for a server whose attempts work under `work_dir`: one per data
/// directory, so two servers in one cgroup (tests) keep apart, and a restarted server finds
/// its own again.
pub fn parent_name(work_dir: &Path) -> String {
    let path = std::path::absolute(work_dir).unwrap_or_else(|_| work_dir.to_path_buf());
    // FNV-1a: stable across builds (std's hasher is not promised to be).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.as_os_str().as_encoded_bytes() {
        hash = (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("flyte-rs-tasks-{:08x}", hash as u32)
}

/// The server's own cgroup path in a hierarchy: the `0::` line (v2) or the line whose
/// controllers include `memory` (v1).
fn own_path(self_cgroup: &str, version: Version) -> Option<&str> {
    self_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = match version {
            Version::V2 => id == "0" && controllers.is_empty(),
            Version::V1 => controllers.split(',').any(|c| c == "memory"),
        };
        matches.then_some(path)
    })
}

/// `<mount>/<own path>`, or the mount itself where the server's path is not visible in it
/// (a container that mounts only its own part of the hierarchy).
fn own_dir(mount: &Path, path: &str) -> PathBuf {
    let dir = mount.join(path.trim_start_matches('/'));
    if dir.is_dir() {
        dir
    } else {
        mount.to_path_buf()
    }
}

fn words(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(|w| w.trim_start_matches('+').to_string())
        .collect()
}

fn detect_v2(root: &Path, self_cgroup: &str, tag: &str) -> Result<TaskCgroups, String> {
    let mount = [root.to_path_buf(), root.join("unified")]
        .into_iter()
        .find(|m| m.join("cgroup.controllers").is_file())
        .ok_or("no cgroup v2 hierarchy")?;
    let path = own_path(self_cgroup, Version::V2).ok_or("the server is in no cgroup v2")?;
    let own = own_dir(&mount, path);
    if !words(&own.join("cgroup.controllers"))
        .iter()
        .any(|c| c == "memory")
    {
        return Err(format!(
            "the cgroup v2 memory controller is not available to {}",
            own.display()
        ));
    }
    enable_memory_below(&own)?;
    TaskCgroups {
        version: Version::V2,
        parent: own.join(tag),
    }
    .probe()
}

/// Makes the memory controller available to the children of `own` (the server's cgroup).
/// cgroup v2 lets a cgroup hand a controller down only while it holds no process itself: a
/// server alone in its cgroup (a systemd unit with `Delegate=yes`) moves into a leaf of it
/// first; one that shares its cgroup is refused.
fn enable_memory_below(own: &Path) -> Result<(), String> {
    let control = own.join("cgroup.subtree_control");
    if words(&control).iter().any(|c| c == "memory") {
        return Ok(());
    }
    let me = std::process::id().to_string();
    let procs = words(&own.join("cgroup.procs"));
    let enabled = |control: &Path| {
        std::fs::write(control, "+memory").is_ok() && words(control).iter().any(|c| c == "memory")
    };
    if procs.is_empty() || procs.iter().any(|p| *p != me) {
        // Empty, or shared (which only the hierarchy's real root allows).
        if enabled(&control) {
            return Ok(());
        }
        return Err(format!(
            "the memory controller is not enabled below {} (cgroup.subtree_control) and other \
             processes share that cgroup with flyte-rs, so flyte-rs cannot enable it; delegate \
             a cgroup to flyte-rs alone (systemd: Delegate=yes)",
            own.display()
        ));
    }
    let leaf = own.join("flyte-rs-server");
    make_dir(&leaf)?;
    std::fs::write(leaf.join("cgroup.procs"), &me)
        .map_err(|e| format!("cannot move flyte-rs into {}: {e}", leaf.display()))?;
    std::fs::write(&control, "+memory")
        .map_err(|e| format!("cannot enable memory in {}: {e}", control.display()))?;
    Ok(())
}

fn detect_v1(root: &Path, self_cgroup: &str, tag: &str) -> Result<TaskCgroups, String> {
    let mount = root.join("memory");
    if !mount.join("memory.limit_in_bytes").is_file() {
        return Err("no cgroup v1 memory hierarchy".into());
    }
    let path = own_path(self_cgroup, Version::V1).unwrap_or("/");
    TaskCgroups {
        version: Version::V1,
        parent: own_dir(&mount, path).join(tag),
    }
    .probe()
}

fn make_dir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create the cgroup {}: {e}", dir.display())),
    }
}

/// This server's parent cgroup of attempt cgroups.
#[derive(Debug, Clone)]
pub struct TaskCgroups {
    version: Version,
    parent: PathBuf,
}

impl TaskCgroups {
    /// For a fake hierarchy in tests: attempt cgroups of `version` under `parent`.
    pub fn at(version: Version, parent: PathBuf) -> Self {
        Self { version, parent }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn parent(&self) -> &Path {
        &self.parent
    }

    /// Whether the parent can be made (it is, and removed again unless attempts of an earlier
    /// server process are in it): the parent exists only while attempt cgroups do, so that a
    /// server leaves nothing behind in its own cgroup.
    fn probe(self) -> Result<Self, String> {
        let existed = self.parent.is_dir();
        self.make_parent()
            .map_err(|e| format!("cannot create the cgroup {}: {e}", self.parent.display()))?;
        let limit = match self.version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        };
        let usable = self.parent.join(limit).is_file();
        if !existed {
            let _ = std::fs::remove_dir(&self.parent);
        }
        match usable {
            true => Ok(self),
            false => Err(format!("{} is not a memory cgroup", self.parent.display())),
        }
    }

    fn make_parent(&self) -> io::Result<()> {
        match std::fs::create_dir(&self.parent) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        if self.version == Version::V2 {
            // Its children (the attempts) get memory.max only if it hands the controller down.
            std::fs::write(self.parent.join("cgroup.subtree_control"), "+memory")?;
        }
        Ok(())
    }

    /// Makes the cgroup `name` (a leftover of an earlier run of the same attempt is emptied
    /// and made again) with `limit` bytes of memory.
    pub fn create(&self, name: &str, limit: u64) -> io::Result<TaskCgroup> {
        let cgroup = TaskCgroup {
            version: self.version,
            dir: self.parent.join(name),
        };
        if cgroup.dir.is_dir() {
            cgroup.kill_all();
            let _ = std::fs::remove_dir(&cgroup.dir);
        }
        // The parent may go between the two (the last other attempt's cgroup removed it).
        let mut tries = 0;
        loop {
            self.make_parent()?;
            match std::fs::create_dir(&cgroup.dir) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => break,
                Err(e) if e.kind() == ErrorKind::NotFound && tries < 3 => tries += 1,
                Err(e) => return Err(e),
            }
        }
        let set = || -> io::Result<()> {
            match self.version {
                Version::V1 => {
                    std::fs::write(cgroup.dir.join("memory.limit_in_bytes"), limit.to_string())
                }
                Version::V2 => {
                    std::fs::write(cgroup.dir.join("memory.max"), limit.to_string())?;
                    // The whole task goes when the kernel kills at the limit, as a container
                    // (Linux 4.19 and later; without it the kernel kills the largest process).
                    let _ = std::fs::write(cgroup.dir.join("memory.oom.group"), "1");
                    Ok(())
                }
            }
        };
        if let Err(e) = set() {
            let _ = std::fs::remove_dir(&cgroup.dir);
            return Err(e);
        }
        Ok(cgroup)
    }

    /// The cgroup `name`, if it exists (a task a previous server process started).
    pub fn find(&self, name: &str) -> Option<TaskCgroup> {
        let dir = self.parent.join(name);
        dir.is_dir().then_some(TaskCgroup {
            version: self.version,
            dir,
        })
    }

    /// Removes the attempt cgroups no process is in and `keep` does not want kept; returns how
    /// many went.
    pub fn sweep(&self, keep: impl Fn(&str) -> bool) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.parent) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !entry.path().is_dir() || keep(&name) {
                continue;
            }
            let cgroup = TaskCgroup {
                version: self.version,
                dir: entry.path(),
            };
            if cgroup.pids().is_empty() && std::fs::remove_dir(&cgroup.dir).is_ok() {
                removed += 1;
            }
        }
        self.remove_parent();
        removed
    }

    /// Removes the parent if no attempt cgroup is left in it.
    pub fn remove_parent(&self) {
        let _ = std::fs::remove_dir(&self.parent);
    }
}

/// One attempt's cgroup.
#[derive(Debug, Clone)]
pub struct TaskCgroup {
    version: Version,
    dir: PathBuf,
}

impl TaskCgroup {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Moves process `pid` (with all its threads) into the cgroup.
    pub fn add(&self, pid: i32) -> io::Result<()> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
    }

    /// The processes in it.
    pub fn pids(&self) -> Vec<i32> {
        words(&self.dir.join("cgroup.procs"))
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// The limit set on it, in bytes.
    pub fn limit(&self) -> Option<u64> {
        let file = match self.version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The most memory its processes used at once, where the kernel tells (v2 `memory.peak`
    /// is Linux 5.19 and later).
    pub fn peak(&self) -> Option<u64> {
        let file = match self.version {
            Version::V1 => "memory.max_usage_in_bytes",
            Version::V2 => "memory.peak",
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the kernel killed a process of it at its limit: the `oom_kill` count of
    /// `memory.events` (v2) or `memory.oom_control` (v1, Linux 4.13 and later); an older v1
    /// kernel without that count: whether the limit was ever hit (`memory.failcnt`).
    pub fn oom_killed(&self) -> bool {
        let (file, key) = match self.version {
            Version::V1 => ("memory.oom_control", "oom_kill"),
            Version::V2 => ("memory.events", "oom_kill"),
        };
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        match counter(&text, key) {
            Some(n) => n > 0,
            None if self.version == Version::V1 => {
                std::fs::read_to_string(self.dir.join("memory.failcnt"))
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            }
            None => false,
        }
    }

    /// SIGKILL to every process in it (also those that left the task's process group).
    pub fn kill_all(&self) {
        for pid in self.pids() {
            if pid > 1 {
                // SAFETY: kill only sends a signal.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }

    /// Kills what is left in it and removes it (the kernel refuses while a process is in it:
    /// dying processes are waited for, up to two seconds).
    pub async fn remove(&self) {
        for _ in 0..40 {
            self.kill_all();
            let _ = std::fs::remove_dir(&self.dir);
            if !self.dir.exists() {
                // The last attempt's cgroup takes the parent with it (others keep it).
                if let Some(parent) = self.dir.parent() {
                    let _ = std::fs::remove_dir(parent);
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!(cgroup = %self.dir.display(), "cannot remove the task's memory cgroup");
    }
}

/// `<key> <n>` of a flat-keyed cgroup file.
fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// The cgroup name of the attempt whose log is at `relative_log_path`
/// (`<project>/<domain>/<execution>/<node>/<attempt>.log`, segments escaped so that none holds
/// `+`): its segments joined with `+`. `None` past the kernel's 255 bytes for a name (such an
/// attempt is sampled).
pub fn cgroup_name(relative_log_path: &str) -> Option<String> {
    let name = relative_log_path.trim_end_matches(".log").replace('/', "+");
    (name.len() <= 255).then_some(name)
}

/// The relative log path of the attempt a cgroup name names (the inverse of [`cgroup_name`]).
pub fn log_path_of(name: &str) -> String {
    format!("{}.log", name.replace('+', "/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory laid out as a cgroup v2 mount in which the server's cgroup is `/srv.slice/
    /// flyte.service`, the memory controller available to it.
    fn fake_v2(dir: &Path, own_procs: &str) -> PathBuf {
        let own = dir.join("srv.slice/flyte.service");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(dir.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
        std::fs::write(own.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        std::fs::write(own.join("cgroup.subtree_control"), "").unwrap();
        std::fs::write(own.join("cgroup.procs"), own_procs).unwrap();
        own
    }

    const SELF_V2: &str = "0::/srv.slice/flyte.service\n";

    #[test]
    fn v2_is_chosen_and_the_attempt_cgroup_files_are_written_and_read() {
        let tmp = tempfile::tempdir().unwrap();
        let own = fake_v2(tmp.path(), &format!("{}\n", std::process::id()));
        // The kernel gives a child of a cgroup that hands memory down its memory files; the
        // fake's parent has them already (an empty directory would be no memory cgroup).
        std::fs::create_dir(own.join("flyte-rs-tasks-1")).unwrap();
        std::fs::write(own.join("flyte-rs-tasks-1/memory.max"), "max\n").unwrap();
        let found = detect(
            MemoryLimitMode::Auto,
            tmp.path(),
            SELF_V2,
            "flyte-rs-tasks-1",
        )
        .unwrap();
        let Enforcement::Cgroup(cgroups) = &found else {
            panic!("{}", found.describe())
        };
        assert_eq!(cgroups.version(), Version::V2);
        assert_eq!(cgroups.parent(), own.join("flyte-rs-tasks-1"));
        assert!(
            found.describe().starts_with("cgroup v2"),
            "{}",
            found.describe()
        );
        // The server, alone in its cgroup, moved into a leaf so that memory could be handed
        // down, to its cgroup's children and by the parent to the attempts'.
        assert_eq!(
            std::fs::read_to_string(own.join("flyte-rs-server/cgroup.procs")).unwrap(),
            std::process::id().to_string()
        );
        assert!(words(&own.join("cgroup.subtree_control")).contains(&"memory".to_string()));
        assert_eq!(
            std::fs::read_to_string(cgroups.parent().join("cgroup.subtree_control")).unwrap(),
            "+memory"
        );

        let cg = cgroups.create("p+d+exec1+n0+0", 200 << 20).unwrap();
        assert_eq!(cg.dir(), cgroups.parent().join("p+d+exec1+n0+0"));
        assert_eq!(
            std::fs::read_to_string(cg.dir().join("memory.max")).unwrap(),
            (200u64 << 20).to_string()
        );
        assert_eq!(cg.limit(), Some(200 << 20));
        assert_eq!(
            std::fs::read_to_string(cg.dir().join("memory.oom.group")).unwrap(),
            "1"
        );
        cg.add(4242).unwrap();
        assert_eq!(
            std::fs::read_to_string(cg.dir().join("cgroup.procs")).unwrap(),
            "4242"
        );
        // memory.events as the kernel writes it.
        let events = |oom_kill: u32| {
            format!(
                "low 0\nhigh 0\nmax 17\noom {oom_kill}\noom_kill {oom_kill}\noom_group_kill 0\n"
            )
        };
        std::fs::write(cg.dir().join("memory.events"), events(0)).unwrap();
        assert!(!cg.oom_killed(), "hitting memory.max is not a kill");
        std::fs::write(cg.dir().join("memory.events"), events(1)).unwrap();
        assert!(cg.oom_killed());
        std::fs::write(cg.dir().join("memory.peak"), "209715200\n").unwrap();
        assert_eq!(cg.peak(), Some(209715200));
        assert!(cgroups.find("p+d+exec1+n0+0").is_some());
        assert!(cgroups.find("p+d+exec1+n0+1").is_none());
    }

    #[test]
    fn v2_shared_with_other_processes_falls_back_to_sampling_or_refuses() {
        let tmp = tempfile::tempdir().unwrap();
        let own = fake_v2(tmp.path(), &format!("1\n{}\n", std::process::id()));
        // A real kernel refuses "+memory" in a cgroup that holds processes (EBUSY); the fake
        // accepts the write, so the file is made unwritable as the kernel's answer.
        std::fs::remove_file(own.join("cgroup.subtree_control")).unwrap();
        std::fs::create_dir(own.join("cgroup.subtree_control")).unwrap();
        let found = detect(MemoryLimitMode::Auto, tmp.path(), SELF_V2, "t").unwrap();
        let Enforcement::Sampling(why) = &found else {
            panic!("{found:?}")
        };
        assert!(why.contains("other processes share that cgroup"), "{why}");
        let refused = detect(MemoryLimitMode::Cgroup, tmp.path(), SELF_V2, "t").unwrap_err();
        assert!(refused.contains("engine.memory_limits"), "{refused}");
        assert!(!own.join("flyte-rs-server").exists(), "nothing moved");
    }

    #[test]
    fn without_the_memory_controller_or_when_told_limits_are_sampled() {
        let tmp = tempfile::tempdir().unwrap();
        let own = fake_v2(tmp.path(), "");
        std::fs::write(own.join("cgroup.controllers"), "cpu pids\n").unwrap();
        let found = detect(MemoryLimitMode::Auto, tmp.path(), SELF_V2, "t").unwrap();
        assert!(
            found
                .describe()
                .contains("memory controller is not available"),
            "{}",
            found.describe()
        );
        let sampled = detect(
            MemoryLimitMode::Sampling,
            Path::new("/sys/fs/cgroup"),
            "",
            "t",
        );
        assert!(matches!(sampled, Ok(Enforcement::Sampling(_))));
    }

    #[test]
    fn v1_oom_control_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        let cg = TaskCgroup {
            version: Version::V1,
            dir: tmp.path().to_path_buf(),
        };
        std::fs::write(tmp.path().join("memory.failcnt"), "12\n").unwrap();
        std::fs::write(
            tmp.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .unwrap();
        assert!(!cg.oom_killed());
        std::fs::write(
            tmp.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert!(cg.oom_killed());
        // A kernel without the count: the limit was hit.
        std::fs::write(
            tmp.path().join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\n",
        )
        .unwrap();
        assert!(cg.oom_killed());
    }

    #[test]
    fn names_round_trip_and_parents_differ_by_data_dir() {
        let name = cgroup_name("p/d/exec~2Ea/n0-n1/2.log").unwrap();
        assert_eq!(name, "p+d+exec~2Ea+n0-n1+2");
        assert_eq!(log_path_of(&name), "p/d/exec~2Ea/n0-n1/2.log");
        assert!(cgroup_name(&"x".repeat(300)).is_none());
        assert_ne!(
            parent_name(Path::new("/a/work")),
            parent_name(Path::new("/b/work"))
        );
        assert_eq!(
            parent_name(Path::new("/a/work")),
            parent_name(Path::new("/a/work"))
        );
    }
}
