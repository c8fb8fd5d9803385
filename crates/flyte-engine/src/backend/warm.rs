//! Warm Python workers (issue 18; docs/adr-008-warm-workers.md): a task attempt whose
//! command is one of flytekit's entrypoints (`pyflyte-execute`, `pyflyte-fast-execute`,
//! `pyflyte-map-execute`) is forked from a pre-started "template" interpreter that has
//! imported flytekit, instead of starting a new interpreter (~0.6 s each).
//!
//! * One template per Python environment and interpreter (the `#!` line of the entrypoint
//!   script the attempt's `PATH` resolves), started on first use ([`warm_template.py`],
//!   written under the work dir) with that environment's base environment (the request's
//!   `base_env`); it imports flytekit and nothing of the user's.
//! * Per attempt the template forks a reaper: its own session and process group, working in
//!   the attempt's directory, stdout/stderr on the attempt's log. The backend records the
//!   reaper's pid as it records the shell wrapper's (`<work dir>.pid`), then sends the go
//!   byte; the reaper forks the task (which takes the attempt's argv, environment, working
//!   directory and `sys.path`, and runs flytekit's click command in process), waits for it,
//!   and writes `<work dir>.exit` as the wrapper does (128+n for signal n). So abort,
//!   timeout, memory limits, logs and re-attach after a restart work as for a plain process.
//! * A template ends with the server that started it (EOF on its stdin); one that died is
//!   replaced; one that forked `max_forks` times or grew by `max_growth` bytes retires after
//!   its reply, and a fresh one is started at once in the background.
//! * Where the pool cannot serve (no flytekit in the environment, an interpreter the script
//!   does not name plainly, a socket path too long), the attempt runs as a plain process,
//!   with one WARN per interpreter.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::Mutex;

/// The template interpreter's program, written next to its sockets.
const TEMPLATE_PY: &str = include_str!("warm_template.py");

/// flytekit's console scripts the pool runs in process (the `ENTRIES` of the template).
const ENTRYPOINTS: &[&str] = &[
    "pyflyte-execute",
    "pyflyte-fast-execute",
    "pyflyte-map-execute",
];

/// How long a template may take to import flytekit (cold disk caches on a busy host).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the template may take to answer a request (it only forks).
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest unix socket path (`sun_path` is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 100;

/// Settings of the pool.
#[derive(Debug, Clone)]
pub struct WarmConfig {
    /// Forks after which a template retires (a fresh one replaces it).
    pub max_forks: u32,
    /// Growth of a template's resident memory, in bytes, after which it retires.
    pub max_growth: u64,
}

impl Default for WarmConfig {
    fn default() -> Self {
        Self {
            max_forks: 1000,
            max_growth: 256 << 20,
        }
    }
}

/// Why an attempt could not be forked from the pool: it then runs as a plain process.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    /// This interpreter cannot serve (said once, at WARN).
    #[error("the warm worker for {python} cannot start: {reason}")]
    Unavailable { python: String, reason: String },
    /// This attempt could not be forked (the template died meanwhile, …).
    #[error("the warm worker could not fork the task: {0}")]
    Fork(String),
}

/// A forked attempt: the reaper's pid, and the connection on which it waits for the go
/// byte and reports the exit status.
#[derive(Debug)]
pub struct WarmTask {
    pub pid: i32,
    conn: BufReader<UnixStream>,
    /// What arrived of the exit line (kept if a wait is cancelled mid-line).
    line: String,
}

impl WarmTask {
    /// Lets the task start (after its pid was recorded).
    pub async fn go(&mut self) -> std::io::Result<()> {
        self.conn.get_mut().write_all(b"g").await
    }

    /// The task's exit code as the wrapper writes it (128+n: signal n); `None` when the
    /// reaper ended without saying (killed).
    pub async fn wait(&mut self) -> Option<i32> {
        while !self.line.ends_with('\n') {
            match self.conn.read_line(&mut self.line).await {
                Ok(n) if n > 0 => {}
                _ => return None,
            }
        }
        self.line.strip_prefix("exit ")?.trim().parse().ok()
    }
}

/// What an attempt asks the template for.
#[derive(Debug)]
pub struct WarmRequest<'a> {
    pub entry: &'a str,
    pub argv: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub cwd: &'a Path,
    pub log: &'a Path,
    pub exit_file: &'a Path,
    pub pid_file: &'a Path,
    /// The environment of the attempt's Python environment without the attempt's own: what
    /// a template for it starts with (`PATH`, `VIRTUAL_ENV`, …).
    pub base_env: &'a BTreeMap<String, String>,
}

/// The template interpreters, one per Python interpreter in use. Cheap to clone.
#[derive(Clone)]
pub struct WarmPool {
    inner: Arc<PoolInner>,
}

/// A template's identity: the interpreter, and the virtual environment it serves (two
/// environments may name one interpreter; their templates differ by `PATH`/`VIRTUAL_ENV`).
type SlotKey = (PathBuf, Option<String>);

struct PoolInner {
    dir: PathBuf,
    config: WarmConfig,
    slots: std::sync::Mutex<HashMap<SlotKey, Arc<Mutex<Slot>>>>,
    next: AtomicU64,
}

enum Slot {
    Empty,
    Ready(Box<Template>),
    /// Said why once; attempts of this interpreter run as plain processes.
    Unavailable,
}

struct Template {
    child: tokio::process::Child,
    socket: PathBuf,
}

impl std::fmt::Debug for WarmPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmPool")
            .field("dir", &self.inner.dir)
            .field("config", &self.inner.config)
            .finish()
    }
}

/// The entrypoint `program` (an executable path) is, and the interpreter its `#!` line
/// names; `None` for anything the pool does not run.
pub fn entrypoint_of(program: &Path) -> Option<(&'static str, PathBuf)> {
    let name = program.file_name()?.to_str()?;
    let entry = ENTRYPOINTS.iter().find(|e| **e == name)?;
    let mut head = [0u8; 512];
    let n = std::io::Read::read(&mut std::fs::File::open(program).ok()?, &mut head).ok()?;
    let first = std::str::from_utf8(&head[..n]).ok()?.lines().next()?;
    let python = first.strip_prefix("#!")?.trim();
    // `#!/usr/bin/env python3` or an interpreter with arguments: not a plain path to trust.
    if python.contains(char::is_whitespace) || !python.starts_with('/') {
        return None;
    }
    Some((entry, PathBuf::from(python)))
}

impl WarmPool {
    /// A pool keeping its sockets and template logs in `dir` (made private to this user).
    pub fn new(dir: PathBuf, config: WarmConfig) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                dir,
                config,
                slots: std::sync::Mutex::new(HashMap::new()),
                next: AtomicU64::new(0),
            }),
        }
    }

    fn slot(&self, python: &Path, base_env: &BTreeMap<String, String>) -> Arc<Mutex<Slot>> {
        let mut slots = match self.inner.slots.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let key = (python.to_path_buf(), base_env.get("VIRTUAL_ENV").cloned());
        slots
            .entry(key)
            .or_insert_with(|| Arc::new(Mutex::new(Slot::Empty)))
            .clone()
    }

    /// Forks the attempt from `python`'s template for its environment (started or replaced
    /// as needed).
    pub async fn fork(
        &self,
        python: &Path,
        request: &WarmRequest<'_>,
    ) -> Result<WarmTask, WarmError> {
        let base_env = template_env(request.base_env);
        let slot = self.slot(python, &base_env);
        let mut slot = slot.lock().await;
        // A template that died (or retired) is replaced once per attempt.
        for _ in 0..2 {
            let socket = self
                .ready(python, &base_env, &mut slot)
                .await?
                .socket
                .clone();
            match request_fork(&socket, request).await {
                Ok((task, retire)) => {
                    if retire {
                        *slot = Slot::Empty;
                        drop(slot);
                        self.prestart(python, base_env);
                    }
                    return Ok(task);
                }
                Err(e) => {
                    tracing::warn!(python = %python.display(), error = %e, "warm worker failed a request; replacing it");
                    *slot = Slot::Empty;
                }
            }
        }
        Err(WarmError::Fork(
            "the replacement template failed as well".into(),
        ))
    }

    /// Starts `python`'s next template in the background (after one retired).
    fn prestart(&self, python: &Path, base_env: BTreeMap<String, String>) {
        let pool = self.clone();
        let python = python.to_path_buf();
        tokio::spawn(async move {
            let slot = pool.slot(&python, &base_env);
            let mut slot = slot.lock().await;
            let _ = pool.ready(&python, &base_env, &mut slot).await;
        });
    }

    /// The running template in `slot`, started if there is none (or it died).
    async fn ready<'s>(
        &self,
        python: &Path,
        base_env: &BTreeMap<String, String>,
        slot: &'s mut Slot,
    ) -> Result<&'s Template, WarmError> {
        if let Slot::Ready(t) = slot
            && !matches!(t.child.try_wait(), Ok(None))
        {
            tracing::warn!(python = %python.display(), "warm worker template ended; starting another");
            *slot = Slot::Empty;
        }
        match slot {
            Slot::Unavailable => {
                return Err(WarmError::Unavailable {
                    python: python.display().to_string(),
                    reason: "said before".into(),
                });
            }
            Slot::Empty => match self.start_template(python, base_env).await {
                Ok(t) => *slot = Slot::Ready(Box::new(t)),
                Err(reason) => {
                    *slot = Slot::Unavailable;
                    let e = WarmError::Unavailable {
                        python: python.display().to_string(),
                        reason,
                    };
                    tracing::warn!(error = %e, "Python tasks of this environment run as plain processes (slower start)");
                    return Err(e);
                }
            },
            Slot::Ready(_) => {}
        }
        match slot {
            Slot::Ready(t) => Ok(t),
            _ => Err(WarmError::Fork("no template".into())),
        }
    }

    async fn start_template(
        &self,
        python: &Path,
        base_env: &BTreeMap<String, String>,
    ) -> Result<Template, String> {
        let dir = &self.inner.dir;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // Whoever can connect can run commands as this server: the owner only.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot make {} private: {e}", dir.display()))?;
        let script = dir.join("warm_template.py");
        std::fs::write(&script, TEMPLATE_PY)
            .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
        let n = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let stem = format!("{}-{n}", std::process::id());
        let socket = dir.join(format!("{stem}.sock"));
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(format!(
                "its socket path {} is longer than {MAX_SOCKET_PATH} bytes (a shorter \
                 engine work directory fixes it)",
                socket.display()
            ));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{stem}.log")))
            .map_err(|e| format!("cannot open its log: {e}"))?;
        let mut child = tokio::process::Command::new(python)
            .arg(&script)
            .arg(&socket)
            .arg(self.inner.config.max_forks.max(1).to_string())
            .arg(self.inner.config.max_growth.to_string())
            .env_clear()
            .envs(base_env)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        let mut stdout = BufReader::new(stdout);
        let read = tokio::time::timeout(READY_TIMEOUT, stdout.read_line(&mut line));
        match read.await {
            Ok(Ok(_)) if line.trim() == "ready" => {}
            Ok(_) => {
                let _ = child.kill().await;
                let said = line.trim().strip_prefix("error ").unwrap_or(line.trim());
                return Err(if said.is_empty() {
                    "the template exited at start".to_string()
                } else {
                    said.to_string()
                });
            }
            Err(_) => {
                let _ = child.kill().await;
                return Err(format!("not ready after {READY_TIMEOUT:?}"));
            }
        }
        tracing::info!(
            python = %python.display(),
            venv = base_env.get("VIRTUAL_ENV").map(String::as_str),
            pid = child.id(),
            "warm worker template ready"
        );
        Ok(Template { child, socket })
    }
}

/// The environment a template starts with: its environment's, without what would import
/// the user's code into it.
fn template_env(base_env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut env = base_env.clone();
    env.remove("PYTHONPATH");
    env.remove("PYTHONSTARTUP");
    env
}

/// One request to a template: its reply is the reaper's pid and whether it retires.
async fn request_fork(
    socket: &Path,
    request: &WarmRequest<'_>,
) -> Result<(WarmTask, bool), String> {
    let path = |p: &Path| {
        p.to_str()
            .map(str::to_string)
            .ok_or_else(|| format!("{} is not UTF-8", p.display()))
    };
    let json = serde_json::json!({
        "entry": request.entry,
        "argv": request.argv,
        "env": request.env,
        "cwd": path(request.cwd)?,
        "log": path(request.log)?,
        "exit_file": path(request.exit_file)?,
        "pid_file": path(request.pid_file)?,
    });
    let mut body = serde_json::to_vec(&json).map_err(|e| e.to_string())?;
    body.push(b'\n');
    let exchange = async {
        let mut conn = UnixStream::connect(socket)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        conn.write_all(&body)
            .await
            .map_err(|e| format!("cannot send: {e}"))?;
        let mut conn = BufReader::new(conn);
        let mut line = String::new();
        conn.read_line(&mut line)
            .await
            .map_err(|e| format!("no reply: {e}"))?;
        let reply = line.trim();
        if let Some(error) = reply.strip_prefix("error ") {
            return Err(error.to_string());
        }
        let mut parts = reply.strip_prefix("pid ").unwrap_or_default().split(' ');
        let pid: i32 = parts
            .next()
            .and_then(|p| p.parse().ok())
            .filter(|p| *p > 1)
            .ok_or_else(|| format!("unexpected reply {reply:?}"))?;
        let retire = parts.next() == Some("1");
        Ok((
            WarmTask {
                pid,
                conn,
                line: String::new(),
            },
            retire,
        ))
    };
    tokio::time::timeout(REPLY_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no reply in {REPLY_TIMEOUT:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_flytekit_entrypoints_with_a_plain_interpreter_are_pooled() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let p = write("pyflyte-execute", "#!/venv/bin/python\nimport sys\n");
        assert_eq!(
            entrypoint_of(&p),
            Some(("pyflyte-execute", PathBuf::from("/venv/bin/python")))
        );
        let p = write("pyflyte-map-execute", "#!/usr/bin/env python3\n");
        assert_eq!(entrypoint_of(&p), None);
        let p = write("my-tool", "#!/venv/bin/python\n");
        assert_eq!(entrypoint_of(&p), None);
        let p = write("pyflyte-fast-execute", "\x7fELF");
        assert_eq!(entrypoint_of(&p), None);
    }
}
