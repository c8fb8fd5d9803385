//! The Python environment task processes run in, prepared at start when none is given.
//!
//! Flytekit registers Python tasks as `pyflyte-fast-execute … pyflyte-execute …`, so a task
//! process needs flytekit's scripts on its `PATH`. In order:
//!
//! 1. `engine.python_venv` is set: that environment is used as it is (never modified).
//! 2. `pyflyte-execute` is on the task `PATH`: used as it is.
//! 3. `<data_dir>/python-venv` was made by an earlier start with today's pins: used.
//! 4. `engine.auto_venv` (the default): that environment is made now, in the background —
//!    `<engine.auto_venv_python> -m venv`, then pip with [`TASK_REQUIREMENTS`] — while the
//!    API serves; Python task attempts wait for it (QUEUED) and fail naming the fix if it
//!    cannot be made.
//! 5. Otherwise a warning at start names the fix, and task attempts fail with it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use flyte_engine::backend::task_io::{execution_error, failed};
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, LocalProcessConfig, TaskAttempt,
    TaskBackend,
};
use flyteidl::core::{TaskTemplate, execution_error::ErrorKind};
use tokio::sync::{Mutex, mpsc, watch};

use crate::config::Config;

/// The packages a task process needs, pinned (the same file feeds `scripts/setup-python.sh`).
pub const TASK_REQUIREMENTS: &str = include_str!("../task-requirements.txt");

/// The program every flytekit task command ends in.
pub const TASK_ENTRYPOINT: &str = "pyflyte-execute";

/// The pins alone (`flytekit==1.16.31`, …), one per line: a comment edit makes nothing anew.
pub fn pins() -> String {
    TASK_REQUIREMENTS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Written into a made environment once pip succeeded: the pins it holds.
const STAMP: &str = ".flyte-rs-requirements";

/// The fix, as start-up warnings and task errors name it.
fn how_to_fix() -> String {
    format!(
        "set engine.python_venv (FLYTE_RS_ENGINE__PYTHON_VENV) to a virtual environment with {} \
         and the task's imports — `scripts/setup-python.sh` makes one in .venv — or start \
         flyte-rs from a shell where `pyflyte-execute` is on PATH, then restart flyte-rs",
        pins().trim_end().replace('\n', " ")
    )
}

/// Where `engine.auto_venv` makes the environment.
pub fn auto_venv_dir(config: &Config) -> PathBuf {
    config.data_dir.join("python-venv")
}

/// What the start does about Python.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The configuration's venv or `PATH` has `pyflyte-execute`.
    AsConfigured,
    /// `engine.python_venv` names an environment without flytekit: used as it is, with a
    /// warning.
    NamedWithoutFlytekit(PathBuf),
    /// An environment made by an earlier start, complete: use it.
    Made(PathBuf),
    /// Make this environment in the background.
    Make(PathBuf),
    /// Nothing provides `pyflyte-execute`, and making an environment is off.
    Missing,
}

/// Decides from the configuration and the `PATH` tasks would get (with a named venv's `bin/`
/// in front, without the auto venv).
pub fn plan(config: &Config, task_path: &OsStr) -> Plan {
    if find_program(TASK_ENTRYPOINT, task_path).is_some() {
        return Plan::AsConfigured;
    }
    if let Some(venv) = &config.engine.python_venv {
        return Plan::NamedWithoutFlytekit(venv.clone());
    }
    let dir = auto_venv_dir(config);
    if is_made(&dir) {
        Plan::Made(dir)
    } else if config.engine.auto_venv {
        Plan::Make(dir)
    } else {
        Plan::Missing
    }
}

/// The start-up warning for a plan that leaves Python tasks unable to start, if any.
pub fn warning(plan: &Plan, task_path: &OsStr) -> Option<String> {
    match plan {
        Plan::NamedWithoutFlytekit(venv) => Some(format!(
            "Python tasks cannot start: engine.python_venv {venv} has no bin/{TASK_ENTRYPOINT} and \
             none is on the task PATH [{path}]. Fix: install flytekit into it \
             (`{venv}/bin/pip install {pins}`), or {fix}",
            venv = venv.display(),
            path = task_path.to_string_lossy(),
            pins = pins().trim_end().replace('\n', " "),
            fix = how_to_fix(),
        )),
        Plan::Missing => Some(format!(
            "Python tasks cannot start: `{TASK_ENTRYPOINT}` (flytekit) is not on the task PATH [{}] \
             and engine.auto_venv is off. Fix: {} (or turn engine.auto_venv on)",
            task_path.to_string_lossy(),
            how_to_fix()
        )),
        _ => None,
    }
}

/// Applies the plan to the local backend's configuration (the venv to use, once made) and
/// logs what tasks will run with; [`Prepared::wrap`] then makes attempts wait for a venv
/// being made.
pub fn prepare(config: &Config, local: &mut LocalProcessConfig) -> Prepared {
    let task_path = local.effective_path();
    let plan = plan(config, &task_path);
    if let Some(warning) = warning(&plan, &task_path) {
        tracing::warn!("{warning}");
    }
    match plan {
        Plan::AsConfigured | Plan::NamedWithoutFlytekit(_) | Plan::Missing => Prepared(None),
        Plan::Made(dir) => {
            tracing::info!(dir = %dir.display(), "Python tasks use the environment made at an earlier start");
            local.venv = Some(dir);
            Prepared(None)
        }
        Plan::Make(dir) => {
            local.venv = Some(dir.clone());
            let log = local.log_dir.join("python-venv.log");
            let status =
                make_in_background(dir.clone(), config.engine.auto_venv_python.clone(), log);
            Prepared(Some((status, dir)))
        }
    }
}

/// The outcome of [`prepare`]: an environment being made, or none.
pub struct Prepared(Option<(watch::Receiver<Status>, PathBuf)>);

impl Prepared {
    /// The local backend as the engine should see it.
    pub fn wrap(self, local: Arc<dyn TaskBackend>) -> Arc<dyn TaskBackend> {
        match self.0 {
            None => local,
            Some((status, dir)) => Arc::new(AwaitPython::new(local, status, dir)),
        }
    }
}

/// An executable `name` in one of `path`'s directories.
pub fn find_program(name: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A made environment: pip finished with today's pins and the entry point is there.
fn is_made(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join(STAMP)).is_ok_and(|s| s == pins())
        && is_executable(&dir.join("bin").join(TASK_ENTRYPOINT))
}

/// Progress of the environment being made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Pending,
    Ready,
    /// Why it could not be made, with the fix.
    Failed(String),
}

/// Starts making `dir` on the current runtime; the receiver follows its progress.
pub fn make_in_background(dir: PathBuf, python: String, log: PathBuf) -> watch::Receiver<Status> {
    let (tx, rx) = watch::channel(Status::Pending);
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        tracing::info!(
            dir = %dir.display(),
            log = %log.display(),
            requirements = pins().trim_end().replace('\n', " "),
            "creating the Python task environment (engine.auto_venv); Python tasks wait for it"
        );
        let status = match make(&dir, &python, &log).await {
            Ok(()) => {
                tracing::info!(
                    dir = %dir.display(),
                    seconds = started.elapsed().as_secs_f64(),
                    "Python task environment ready"
                );
                Status::Ready
            }
            Err(why) => {
                let message = format!(
                    "the Python task environment could not be created in {}: {why} (log: {}). \
                     Fix: {}",
                    dir.display(),
                    log.display(),
                    how_to_fix()
                );
                tracing::error!(dir = %dir.display(), "{message}");
                Status::Failed(message)
            }
        };
        tx.send_replace(status);
    });
    rx
}

/// `<python> -m venv <dir>`, pip install of the pins, then the stamp. An incomplete earlier
/// attempt is removed first: a venv cannot be moved into place (its scripts name its path).
async fn make(dir: &Path, python: &str, log: &Path) -> Result<(), String> {
    if dir.exists() {
        tokio::fs::remove_dir_all(dir)
            .await
            .map_err(|e| format!("cannot remove the incomplete {}: {e}", dir.display()))?;
    }
    if let Some(parent) = log.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let requirements = dir.with_extension("requirements.txt");
    tokio::fs::write(&requirements, TASK_REQUIREMENTS)
        .await
        .map_err(|e| format!("cannot write {}: {e}", requirements.display()))?;
    run(
        python,
        &["-m".as_ref(), "venv".as_ref(), dir.as_os_str()],
        log,
        &format!("`{python} -m venv` failed (is Python 3 with its venv module installed?)"),
    )
    .await?;
    let pip = dir.join("bin").join("python");
    run(
        &pip.to_string_lossy(),
        &[
            "-m".as_ref(),
            "pip".as_ref(),
            "install".as_ref(),
            "--disable-pip-version-check".as_ref(),
            "-r".as_ref(),
            requirements.as_os_str(),
        ],
        log,
        "pip could not install flytekit (is the package index reachable?)",
    )
    .await?;
    if !is_executable(&dir.join("bin").join(TASK_ENTRYPOINT)) {
        return Err(format!("pip finished but bin/{TASK_ENTRYPOINT} is missing"));
    }
    tokio::fs::write(dir.join(STAMP), pins())
        .await
        .map_err(|e| format!("cannot write the stamp: {e}"))?;
    let _ = tokio::fs::remove_file(&requirements).await;
    Ok(())
}

/// Runs a command with its output appended to `log`; the error has the end of the log.
async fn run(program: &str, args: &[&OsStr], log: &Path, what: &str) -> Result<(), String> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let status = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| format!("{what}: cannot run `{program}`: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Err(format!(
        "{what}: {status}; last lines: {}",
        tail.join(" | ")
    ))
}

/// A task backend that holds attempts until the Python environment is made, then hands
/// them to `inner` (the local-process backend); if it cannot be made, they fail with the fix.
pub struct AwaitPython {
    inner: Arc<dyn TaskBackend>,
    status: watch::Receiver<Status>,
    dir: PathBuf,
    /// Attempts waiting for the environment: their abort switches. Held while an attempt is
    /// handed over, so an abort reaches it either here or in `inner`.
    waiting: Arc<Mutex<HashMap<AttemptKey, watch::Sender<bool>>>>,
}

impl AwaitPython {
    pub fn new(inner: Arc<dyn TaskBackend>, status: watch::Receiver<Status>, dir: PathBuf) -> Self {
        Self {
            inner,
            status,
            dir,
            waiting: Arc::default(),
        }
    }
}

type Updates = mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>;

fn fail(updates: &Updates, key: AttemptKey, message: String) {
    let error = execution_error("PythonEnvironmentUnavailable", message, ErrorKind::System);
    let _ = updates.send((
        key,
        AttemptUpdate::Finished(failed(error, false, Vec::new())),
    ));
}

/// Hands an attempt to the backend, reporting a refusal as the engine would.
async fn hand_over(inner: &Arc<dyn TaskBackend>, attempt: TaskAttempt, updates: &Updates) {
    let key = attempt.key.clone();
    if let Err(e) = inner.start(attempt, updates.clone()).await {
        let (code, kind, retryable) = match &e {
            BackendError::Unsupported(_) => ("TaskBackendUnsupported", ErrorKind::User, false),
            BackendError::Internal(_) => ("TaskBackendError", ErrorKind::System, true),
        };
        let error = execution_error(code, e.to_string(), kind);
        let _ = updates.send((
            key,
            AttemptUpdate::Finished(failed(error, retryable, Vec::new())),
        ));
    }
}

#[async_trait]
impl TaskBackend for AwaitPython {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn handles(&self, template: &TaskTemplate) -> bool {
        self.inner.handles(template)
    }

    async fn start(&self, attempt: TaskAttempt, updates: Updates) -> Result<(), BackendError> {
        let status = self.status.borrow().clone();
        match status {
            Status::Ready => return self.inner.start(attempt, updates).await,
            Status::Failed(message) => {
                fail(&updates, attempt.key, message);
                return Ok(());
            }
            Status::Pending => {}
        }
        let key = attempt.key.clone();
        let (abort_tx, mut abort_rx) = watch::channel(false);
        self.waiting.lock().await.insert(key.clone(), abort_tx);
        let _ = updates.send((
            key.clone(),
            AttemptUpdate::Queued {
                reason: format!(
                    "waiting for the Python task environment being created in {}",
                    self.dir.display()
                ),
            },
        ));
        let mut status = self.status.clone();
        let inner = self.inner.clone();
        let waiting = self.waiting.clone();
        tokio::spawn(async move {
            let settled = async {
                match status.wait_for(|s| *s != Status::Pending).await {
                    Ok(s) => s.clone(),
                    Err(_) => Status::Failed(format!(
                        "the Python task environment set-up stopped before it finished. Fix: {}",
                        how_to_fix()
                    )),
                }
            };
            let aborted = async { abort_rx.wait_for(|aborted| *aborted).await.is_ok() };
            let outcome = tokio::select! {
                outcome = settled => Some(outcome),
                _ = aborted => None,
            };
            let mut guard = waiting.lock().await;
            guard.remove(&key);
            let aborted_meanwhile = *abort_rx.borrow();
            let Some(outcome) = outcome.filter(|_| !aborted_meanwhile) else {
                let _ = updates.send((key, AttemptUpdate::Finished(AttemptOutcome::Aborted)));
                return;
            };
            match outcome {
                Status::Ready => hand_over(&inner, attempt, &updates).await,
                Status::Failed(message) => fail(&updates, key, message),
                Status::Pending => unreachable!("waited for a status other than Pending"),
            }
            drop(guard);
        });
        Ok(())
    }

    async fn abort(&self, key: &AttemptKey) {
        let waiting = self.waiting.lock().await;
        match waiting.get(key) {
            Some(switch) => {
                switch.send_replace(true);
            }
            None => {
                drop(waiting);
                self.inner.abort(key).await;
            }
        }
    }

    /// A process that runs already needs no environment made: straight to the backend.
    async fn reattach(
        &self,
        attempt: TaskAttempt,
        updates: Updates,
    ) -> Result<flyte_engine::backend::Reattach, BackendError> {
        self.inner.reattach(attempt, updates).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        let mut c = Config::for_test(dir);
        c.engine.auto_venv = true;
        c
    }

    fn executable(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn the_plan_follows_configuration_path_and_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        let empty = OsStr::new("/nonexistent");
        assert_eq!(plan(&c, empty), Plan::Make(auto_venv_dir(&c)));

        let bin = dir.path().join("bin");
        executable(&bin.join(TASK_ENTRYPOINT));
        let path = std::env::join_paths([Path::new("/nonexistent"), &bin]).unwrap();
        assert_eq!(plan(&c, &path), Plan::AsConfigured);

        let named = dir.path().join("named");
        c.engine.python_venv = Some(named.clone());
        assert_eq!(
            plan(&c, empty),
            Plan::NamedWithoutFlytekit(named.clone()),
            "a named venv is never made"
        );
        let warned = warning(&Plan::NamedWithoutFlytekit(named.clone()), empty).unwrap();
        assert!(warned.contains("pip install flytekit==1.16.31"), "{warned}");
        c.engine.python_venv = None;

        c.engine.auto_venv = false;
        assert_eq!(plan(&c, empty), Plan::Missing);
        let warning = warning(&Plan::Missing, empty).unwrap();
        assert!(warning.contains("engine.python_venv") && warning.contains("/nonexistent"));

        // A complete environment from an earlier start is used; a half-made one is not.
        let made = auto_venv_dir(&c);
        executable(&made.join("bin").join(TASK_ENTRYPOINT));
        assert_eq!(plan(&c, empty), Plan::Missing);
        std::fs::write(made.join(STAMP), pins()).unwrap();
        assert_eq!(plan(&c, empty), Plan::Made(made.clone()));
        std::fs::write(made.join(STAMP), "flytekit==0.1\n").unwrap();
        c.engine.auto_venv = true;
        assert_eq!(plan(&c, empty), Plan::Make(made), "other pins: made again");
    }

    /// The stamp holds the package lines alone, comments dropped: flytekit exactly as the
    /// contract names it, and the adlfs pin Azure stores need (task-requirements.txt says why).
    #[test]
    fn the_pins_are_the_requirement_lines_without_comments() {
        assert_eq!(pins(), "flytekit==1.16.31\nadlfs==2025.8.0\n");
    }

    /// A python that is not there: the status names the fix (the real interpreter is
    /// exercised end to end in tests/e2e/test_first_run.py).
    #[tokio::test]
    async fn a_failed_make_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("python-venv");
        let log = dir.path().join("logs").join("python-venv.log");
        let mut rx = make_in_background(venv.clone(), "/nonexistent/python3".into(), log);
        let status = rx
            .wait_for(|s| *s != Status::Pending)
            .await
            .unwrap()
            .clone();
        let Status::Failed(message) = status else {
            panic!("{status:?}")
        };
        assert!(message.contains("/nonexistent/python3"), "{message}");
        assert!(message.contains("engine.python_venv"), "{message}");
        assert!(!is_made(&venv));
    }
}
