//! The data dir belongs to one server process (an OS lock the kernel releases when the owner
//! dies), and a data dir whose database cannot be written stops the start at once.
//!
//! These tests run the real binary. The read-only case needs root (it mounts a read-only
//! filesystem, since root ignores file permissions): it fails, never skips, without it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::SmallDisk;

const BIN: &str = env!("CARGO_BIN_EXE_flyte-rs");

/// A command with a clean environment (no FLYTE_RS_* leaking in from the caller).
fn flyte_rs(home: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        // These servers never run a Python task: no background venv build.
        .env("FLYTE_RS_ENGINE__AUTO_VENV", "false");
    cmd
}

/// Kills the server if a test fails before stopping it.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts the binary on a random port over `data`; returns once it printed its ready line.
fn spawn_server(home: &Path, data: &Path) -> Guard {
    let child = flyte_rs(home)
        .args(["start", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Guard(child);
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            panic!("flyte-rs exited before it was ready");
        }
        if line.starts_with("flyte-rs is ready at ") {
            break;
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in stdout.lines() {});
    child
}

/// Runs `flyte-rs start` on `data` expecting it to give up by itself; its exit status and
/// stderr. A start that keeps running is killed after a generous minute and fails the test.
fn start_expecting_exit(mut cmd: Command, data: &Path) -> (std::process::ExitStatus, String) {
    let child = cmd
        .args(["start", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Guard(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.0.kill();
            let _ = child.0.wait();
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err);
            panic!("flyte-rs start did not give up; it was killed. stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    (status, err)
}

#[test]
fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let mut first = spawn_server(home.path(), &data);
    let owner = first.0.id();

    let (status, err) = start_expecting_exit(flyte_rs(home.path()), &data);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&data.display().to_string()),
        "names the data dir: {err}"
    );
    assert!(
        err.contains(&format!("PID {owner}")),
        "names the owner's PID {owner}: {err}"
    );

    // The first one is untouched by the attempt, and once it dies (even without a chance to
    // clean up) the kernel releases the lock: a new server starts on the same data dir.
    assert!(
        first.0.try_wait().unwrap().is_none(),
        "the owner still runs"
    );
    first.0.kill().unwrap(); // SIGKILL
    first.0.wait().unwrap();
    let mut next = spawn_server(home.path(), &data);
    let lock = std::fs::read_to_string(data.join("flyte-rs.lock")).unwrap();
    assert_eq!(
        lock.trim(),
        next.0.id().to_string(),
        "the lock file names the owner"
    );
    next.0.kill().unwrap();
    next.0.wait().unwrap();
}

/// A small tmpfs that `fill` writes into, then remounted read-only. Needs root (CI and the
/// dev machines run as root): without it the test fails here.
fn read_only_mount(fill: impl FnOnce(&Path)) -> SmallDisk {
    let disk = SmallDisk::mount("16m");
    fill(disk.path());
    disk.remount("ro");
    disk
}

#[test]
fn a_read_only_database_stops_the_start_with_the_file_and_the_cause() {
    let home = tempfile::tempdir().unwrap();
    // A database made by a real server, then frozen on a read-only filesystem.
    let ro = read_only_mount(|dir| {
        let mut server = spawn_server(home.path(), &dir.join("data"));
        let pid = server.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(server.0.wait().unwrap().success());
    });
    let db: PathBuf = ro.path().join("data").join("flyte.db");
    assert!(db.is_file());

    // The data dir itself is writable: only the metadata store is read-only.
    let mut cmd = flyte_rs(home.path());
    cmd.env(
        "FLYTE_RS_STORAGE__METADATA_URL",
        format!("sqlite://{}", db.display()),
    );
    let (status, err) = start_expecting_exit(cmd, &home.path().join("data"));
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&db.display().to_string()),
        "names the file: {err}"
    );
    assert!(err.contains("read-only"), "names the cause: {err}");
}
