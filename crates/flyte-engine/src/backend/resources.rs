//! Task resources on the local backend: what an attempt requests and may use (its container's
//! `resources`, resolved as propeller resolves them), the host's capacity, and the admission
//! that starts a task process only once its requests fit beside the ones running.
//!
//! * Requests and limits per resource as in propeller's `AdjustOrDefaultResource`: a missing
//!   request takes the limit, else the default; a missing limit takes the request; a request
//!   above its limit is lowered to it. CPU defaults to one core (so by default one task process
//!   runs per core, as before); memory has no default (no reservation, no limit).
//! * Admission is first-fit in arrival order: whenever capacity is freed, every waiting
//!   attempt whose request fits now is started, the oldest first. A request larger than the
//!   host never fits: the caller fails it at once instead of queueing it forever.
//! * Eager tasks are not admitted here at all (see `local.rs`): they wait for the executions
//!   they launch, so holding capacity while waiting would starve the tasks they wait for.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use flyteidl::core::{TaskTemplate, resources::ResourceName, task_template};
use tokio::sync::oneshot;

/// A Kubernetes quantity (`500m`, `2`, `1.5`, `64Mi`, `1Gi`, `1G`, `1e3`) as a number.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let mut value: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    value *= factor;
    (value.is_finite() && value >= 0.0).then_some(value)
}

/// CPU in thousandths of a core and memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Need {
    pub cpu_milli: u64,
    pub memory: u64,
}

impl Need {
    fn fits_in(&self, free: Need) -> bool {
        self.cpu_milli <= free.cpu_milli && self.memory <= free.memory
    }
}

impl std::fmt::Display for Need {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} CPU and {} of memory",
            cpus(self.cpu_milli),
            bytes(self.memory)
        )
    }
}

/// `1.5`, `2`, `0.25`: cores from thousandths.
pub fn cpus(milli: u64) -> String {
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{}", milli as f64 / 1000.0)
    }
}

/// `512 MiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What a task gets when its template says nothing (propeller's `default-cpus`/`default-memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    pub cpu_milli: u64,
    /// `None`: no memory reservation and no limit.
    pub memory: Option<u64>,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            cpu_milli: 1000,
            memory: None,
        }
    }
}

/// An attempt's resolved requests and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskResources {
    pub request: Need,
    pub cpu_limit_milli: Option<u64>,
    pub memory_limit: Option<u64>,
    /// The requests as the task wrote them (`cpu=64, memory=1Ti`), for messages.
    pub written: String,
}

impl TaskResources {
    /// The container's resources resolved against `defaults`; a value that is no quantity is
    /// an error naming it.
    pub fn of(template: &TaskTemplate, defaults: &Defaults) -> Result<Self, String> {
        let Some(task_template::Target::Container(container)) = &template.target else {
            return Ok(Self::resolve(
                None,
                None,
                None,
                None,
                defaults,
                String::new(),
            ));
        };
        let empty = Default::default();
        let resources = container.resources.as_ref().unwrap_or(&empty);
        let find = |entries: &[flyteidl::core::resources::ResourceEntry],
                    name: ResourceName,
                    scale: f64|
         -> Result<Option<u64>, String> {
            let Some(entry) = entries.iter().rev().find(|e| e.name == name as i32) else {
                return Ok(None);
            };
            let value = parse_quantity(&entry.value).ok_or_else(|| {
                format!(
                    "the task's {} {:?} is not a quantity (like 500m, 2, 512Mi, 4Gi)",
                    name.as_str_name().to_ascii_lowercase(),
                    entry.value
                )
            })?;
            // Zero is unset, as in propeller (`Quantity.IsZero`).
            Ok(Some((value * scale).ceil() as u64).filter(|v| *v > 0))
        };
        let cpu_req = find(&resources.requests, ResourceName::Cpu, 1000.0)?;
        let mem_req = find(&resources.requests, ResourceName::Memory, 1.0)?;
        let cpu_lim = find(&resources.limits, ResourceName::Cpu, 1000.0)?;
        let mem_lim = find(&resources.limits, ResourceName::Memory, 1.0)?;
        let written = resources
            .requests
            .iter()
            .filter(|e| e.name == ResourceName::Cpu as i32 || e.name == ResourceName::Memory as i32)
            .map(|e| {
                let name = if e.name == ResourceName::Cpu as i32 {
                    "cpu"
                } else {
                    "memory"
                };
                format!("{name}={}", e.value)
            })
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Self::resolve(
            cpu_req, cpu_lim, mem_req, mem_lim, defaults, written,
        ))
    }

    fn resolve(
        cpu_req: Option<u64>,
        cpu_lim: Option<u64>,
        mem_req: Option<u64>,
        mem_lim: Option<u64>,
        defaults: &Defaults,
        written: String,
    ) -> Self {
        // propeller's AdjustOrDefaultResource, per resource.
        let adjust = |req: Option<u64>, lim: Option<u64>, default: Option<u64>| {
            let req = req.or(lim).or(default);
            let lim = lim.or(req);
            let req = match (req, lim) {
                (Some(r), Some(l)) => Some(r.min(l)),
                (r, _) => r,
            };
            (req, lim)
        };
        let (cpu, cpu_limit) = adjust(cpu_req, cpu_lim, Some(defaults.cpu_milli));
        let (memory, memory_limit) = adjust(mem_req, mem_lim, defaults.memory);
        Self {
            request: Need {
                cpu_milli: cpu.unwrap_or(0),
                memory: memory.unwrap_or(0),
            },
            cpu_limit_milli: cpu_limit,
            memory_limit,
            written,
        }
    }
}

/// What the host offers task processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity(pub Need);

impl Capacity {
    /// The cores this process may use and the memory of the host (or of the server's cgroup,
    /// if that is less).
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let memory = [host_memory(), cgroup_memory_limit()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX);
        Capacity(Need {
            cpu_milli: cores * 1000,
            memory,
        })
    }
}

fn host_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory limit of the cgroup this server runs in (v2 `memory.max`, v1
/// `memory.limit_in_bytes`), if it has one.
fn cgroup_memory_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let file = if controllers.is_empty() {
            format!("/sys/fs/cgroup{path}/memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        } else {
            continue;
        };
        if let Some(limit) = std::fs::read_to_string(file)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
        {
            return Some(limit);
        }
    }
    None
}

/// Starts attempts once their requests fit (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct Admission {
    shared: Arc<Shared>,
}

struct Shared {
    capacity: Capacity,
    /// At most this many admitted processes at once (0: no limit but the capacity).
    max_processes: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    used: Need,
    processes: usize,
    next_id: u64,
    waiting: VecDeque<Waiter>,
}

struct Waiter {
    id: u64,
    need: Need,
    grant: oneshot::Sender<Reservation>,
}

/// Capacity held by one running attempt, given back when dropped.
pub struct Reservation {
    shared: Arc<Shared>,
    need: Need,
}

/// A place in the queue; dropping it leaves the queue.
pub struct Ticket {
    shared: Arc<Shared>,
    id: u64,
    grant: Option<oneshot::Receiver<Reservation>>,
}

pub enum Admit {
    Now(Reservation),
    Wait(Ticket),
}

impl Admission {
    pub fn new(capacity: Capacity, max_processes: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                capacity,
                max_processes,
                state: Mutex::new(State::default()),
            }),
        }
    }

    pub fn capacity(&self) -> Capacity {
        self.shared.capacity
    }

    pub fn max_processes(&self) -> usize {
        self.shared.max_processes
    }

    /// Why `need` can never be admitted on this host, if it cannot.
    pub fn never_fits(&self, need: Need) -> Option<String> {
        let cap = self.shared.capacity.0;
        (!need.fits_in(cap)).then(|| format!("this host offers {cap}"))
    }

    /// Capacity in use and processes admitted.
    pub fn in_use(&self) -> (Need, usize) {
        let state = self.shared.lock();
        (state.used, state.processes)
    }

    /// Admits `need` now if it fits and nobody waits, else queues it.
    pub fn admit(&self, need: Need) -> Admit {
        let mut state = self.shared.lock();
        if state.waiting.is_empty() && self.shared.fits(&state, need) {
            return Admit::Now(self.shared.reserve(&mut state, need));
        }
        let (tx, rx) = oneshot::channel();
        state.next_id += 1;
        let id = state.next_id;
        state.waiting.push_back(Waiter {
            id,
            need,
            grant: tx,
        });
        Admit::Wait(Ticket {
            shared: self.shared.clone(),
            id,
            grant: Some(rx),
        })
    }

    /// Counts `need` as in use whether it fits or not: for a process that already runs (one
    /// re-attached after a restart).
    pub fn reserve_running(&self, need: Need) -> Reservation {
        let mut state = self.shared.lock();
        self.shared.reserve(&mut state, need)
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere (every update is one statement).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fits(&self, state: &State, need: Need) -> bool {
        let cap = self.capacity.0;
        let free = Need {
            cpu_milli: cap.cpu_milli.saturating_sub(state.used.cpu_milli),
            memory: cap.memory.saturating_sub(state.used.memory),
        };
        need.fits_in(free) && (self.max_processes == 0 || state.processes < self.max_processes)
    }

    fn reserve(self: &Arc<Self>, state: &mut State, need: Need) -> Reservation {
        state.used.cpu_milli += need.cpu_milli;
        state.used.memory += need.memory;
        state.processes += 1;
        Reservation {
            shared: self.clone(),
            need,
        }
    }

    /// Grants every waiter that fits now, oldest first; the grants are sent outside the lock
    /// (a grant whose waiter has gone is dropped there, which releases it again).
    fn dispatch(self: &Arc<Self>) {
        let mut grants = Vec::new();
        {
            let mut state = self.lock();
            let mut i = 0;
            while i < state.waiting.len() {
                let need = state.waiting[i].need;
                if self.fits(&state, need) {
                    let waiter = state.waiting.remove(i).expect("index in range");
                    let reservation = self.reserve(&mut state, need);
                    grants.push((waiter.grant, reservation));
                } else {
                    i += 1;
                }
            }
        }
        for (tx, reservation) in grants {
            let _ = tx.send(reservation);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.used.cpu_milli = state.used.cpu_milli.saturating_sub(self.need.cpu_milli);
            state.used.memory = state.used.memory.saturating_sub(self.need.memory);
            state.processes = state.processes.saturating_sub(1);
        }
        self.shared.dispatch();
    }
}

impl Ticket {
    /// Waits until the request is admitted.
    pub async fn granted(mut self) -> Reservation {
        let rx = self.grant.take().expect("a ticket is awaited once");
        match rx.await {
            Ok(reservation) => reservation,
            // The sender lives in the queue until it grants: unreachable while we hold the
            // ticket, but never hang on it.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.waiting.retain(|w| w.id != self.id);
        // A reservation already granted but not received is dropped with `grant` (released).
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flyteidl::core::{Container, Resources, resources::ResourceEntry};

    fn template(
        requests: &[(ResourceName, &str)],
        limits: &[(ResourceName, &str)],
    ) -> TaskTemplate {
        let entries = |list: &[(ResourceName, &str)]| {
            list.iter()
                .map(|(n, v)| ResourceEntry {
                    name: *n as i32,
                    value: v.to_string(),
                })
                .collect()
        };
        TaskTemplate {
            target: Some(task_template::Target::Container(Container {
                resources: Some(Resources {
                    requests: entries(requests),
                    limits: entries(limits),
                }),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    const GI: u64 = 1 << 30;
    const MI: u64 = 1 << 20;

    #[test]
    fn quantities_parse_as_kubernetes_writes_them() {
        for (text, value) in [
            ("2", 2.0),
            ("500m", 0.5),
            ("1.5", 1.5),
            ("64Mi", 64.0 * MI as f64),
            ("1Gi", GI as f64),
            ("1G", 1e9),
            ("1e3", 1000.0),
            ("128974848", 128974848.0),
            (" 1Ti ", (1u64 << 40) as f64),
        ] {
            assert_eq!(parse_quantity(text), Some(value), "{text}");
        }
        for bad in ["", "lots", "1 Gi", "-1", "1Xi", "Gi"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn requests_and_limits_resolve_as_in_propeller() {
        let d = Defaults::default();
        // Nothing: one core, no memory reservation, no memory limit.
        let r = TaskResources::of(&template(&[], &[]), &d).unwrap();
        assert_eq!(
            r.request,
            Need {
                cpu_milli: 1000,
                memory: 0
            }
        );
        assert_eq!(r.memory_limit, None);
        // A request alone is also the limit.
        let r = TaskResources::of(&template(&[(ResourceName::Memory, "200Mi")], &[]), &d).unwrap();
        assert_eq!(r.request.memory, 200 * MI);
        assert_eq!(r.memory_limit, Some(200 * MI));
        // A limit alone is also the request.
        let r = TaskResources::of(&template(&[], &[(ResourceName::Cpu, "2")]), &d).unwrap();
        assert_eq!(r.request.cpu_milli, 2000);
        // A request above its limit is lowered to it.
        let r = TaskResources::of(
            &template(
                &[(ResourceName::Memory, "2Gi")],
                &[(ResourceName::Memory, "1Gi")],
            ),
            &d,
        )
        .unwrap();
        assert_eq!((r.request.memory, r.memory_limit), (GI, Some(GI)));
        assert!(
            TaskResources::of(&template(&[(ResourceName::Cpu, "lots")], &[]), &d)
                .unwrap_err()
                .contains("\"lots\"")
        );
    }

    fn cap(cpus: u64, gib: u64) -> Capacity {
        Capacity(Need {
            cpu_milli: cpus * 1000,
            memory: gib * GI,
        })
    }

    fn need(cpu_milli: u64, gib: u64) -> Need {
        Need {
            cpu_milli,
            memory: gib * GI,
        }
    }

    #[test]
    fn a_request_larger_than_the_host_never_fits() {
        let a = Admission::new(cap(2, 4), 0);
        assert!(a.never_fits(need(2000, 4)).is_none());
        let why = a.never_fits(need(64000, 1024)).unwrap();
        assert!(why.contains("2 CPU and 4 GiB"), "{why}");
    }

    #[tokio::test]
    async fn waiters_start_when_their_request_fits_oldest_first() {
        let a = Admission::new(cap(2, 4), 0);
        let Admit::Now(first) = a.admit(need(1500, 1)) else {
            panic!("fits at once")
        };
        let Admit::Wait(big) = a.admit(need(1000, 1)) else {
            panic!("0.5 CPU left")
        };
        // Waiting in line: a small request does not overtake one that waits.
        let Admit::Wait(small) = a.admit(need(500, 1)) else {
            panic!("someone waits")
        };
        let (big, small) = (tokio::spawn(big.granted()), tokio::spawn(small.granted()));
        tokio::task::yield_now().await;
        assert_eq!(a.in_use(), (need(1500, 1), 1));
        drop(first);
        let (big, small) = (big.await.unwrap(), small.await.unwrap());
        assert_eq!(a.in_use(), (need(1500, 2), 2));
        drop((big, small));
        assert_eq!(a.in_use(), (Need::default(), 0));
    }

    #[tokio::test]
    async fn a_dropped_ticket_leaves_the_queue_and_frees_what_it_was_granted() {
        let a = Admission::new(cap(1, 4), 0);
        let Admit::Now(first) = a.admit(need(1000, 0)) else {
            panic!()
        };
        let Admit::Wait(t) = a.admit(need(1000, 0)) else {
            panic!()
        };
        drop(first);
        // Granted while nobody awaited it: dropping the ticket releases it.
        assert_eq!(a.in_use().1, 1);
        drop(t);
        assert_eq!(a.in_use(), (Need::default(), 0));
        let Admit::Wait(t) = a.admit(need(2000, 0)) else {
            panic!()
        };
        drop(t);
        assert!(matches!(a.admit(need(1000, 0)), Admit::Now(_)));
    }

    #[test]
    fn the_process_count_limit_applies_too() {
        let a = Admission::new(cap(8, 8), 1);
        let _one = a.admit(need(100, 0));
        assert!(matches!(a.admit(need(100, 0)), Admit::Wait(_)));
    }
}
