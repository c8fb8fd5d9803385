//! The `flyte-rs` binary: configuration layering and dump, the ready line, signals.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_flyte-rs");

/// A command with a clean environment (no FLYTE_RS_* leaking in from the caller). No Python
/// environment is made for these short-lived servers (engine.auto_venv off).
fn flyte_rs(home: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("FLYTE_RS_ENGINE__AUTO_VENV", "false");
    cmd
}

fn dump(cmd: &mut Command) -> toml::Table {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().parse().unwrap()
}

fn get<'a>(t: &'a toml::Table, path: &str) -> &'a toml::Value {
    let mut parts = path.split('.');
    let mut v = &t[parts.next().unwrap()];
    for p in parts {
        v = &v[p];
    }
    v
}

#[test]
fn config_dump_shows_defaults() {
    let home = tempfile::tempdir().unwrap();
    let t = dump(flyte_rs(home.path()).args(["config", "dump"]));
    let data = home.path().join(".flyte-rs");
    assert_eq!(
        get(&t, "data_dir").as_str().unwrap(),
        data.to_str().unwrap()
    );
    assert_eq!(
        get(&t, "server.listen").as_str().unwrap(),
        "127.0.0.1:30080"
    );
    assert_eq!(
        get(&t, "server.public_url").as_str().unwrap(),
        "http://127.0.0.1:30080"
    );
    assert_eq!(
        get(&t, "storage.metadata_url").as_str().unwrap(),
        format!("sqlite://{}/flyte.db", data.display())
    );
    assert_eq!(
        get(&t, "storage.blob_url").as_str().unwrap(),
        format!("file://{}/blobs", data.display())
    );
    assert_eq!(get(&t, "logging.format").as_str().unwrap(), "text");
}

#[test]
fn layers_defaults_file_env_flags() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("flyte-rs.yaml");
    std::fs::write(
        &file,
        "server:\n  listen: 127.0.0.1:1001\n  max_request_bytes: 4096\nadmin:\n  upload_prefix: from-file\nlogging:\n  level: debug\n",
    )
    .unwrap();

    // file over defaults
    let t = dump(
        flyte_rs(home.path())
            .args(["config", "dump", "--config"])
            .arg(&file),
    );
    assert_eq!(get(&t, "server.listen").as_str().unwrap(), "127.0.0.1:1001");
    assert_eq!(
        get(&t, "admin.upload_prefix").as_str().unwrap(),
        "from-file"
    );

    // env over file
    let t = dump(
        flyte_rs(home.path())
            .args(["config", "dump", "--config"])
            .arg(&file)
            .env("FLYTE_RS_SERVER__LISTEN", "127.0.0.1:1002")
            .env("FLYTE_RS_LOGGING__FORMAT", "json"),
    );
    assert_eq!(get(&t, "server.listen").as_str().unwrap(), "127.0.0.1:1002");
    assert_eq!(
        get(&t, "server.max_request_bytes").as_integer().unwrap(),
        4096,
        "file kept where env is silent"
    );
    assert_eq!(get(&t, "logging.format").as_str().unwrap(), "json");
    assert_eq!(get(&t, "logging.level").as_str().unwrap(), "debug");

    // flags over env; storage defaults follow the final data dir; start --dump-config == config dump
    let data = home.path().join("data");
    let args = |cmd: &mut Command| {
        cmd.arg("--config")
            .arg(&file)
            .args(["--listen", "127.0.0.1:1003", "--data-dir"])
            .arg(&data)
            .env("FLYTE_RS_SERVER__LISTEN", "127.0.0.1:1002")
            .env("FLYTE_RS_DATA_DIR", "/from-env");
    };
    let mut a = flyte_rs(home.path());
    a.args(["config", "dump"]);
    args(&mut a);
    let mut b = flyte_rs(home.path());
    b.args(["start", "--dump-config"]);
    args(&mut b);
    let (t, t2) = (dump(&mut a), dump(&mut b));
    assert_eq!(t, t2);
    assert_eq!(get(&t, "server.listen").as_str().unwrap(), "127.0.0.1:1003");
    assert_eq!(
        get(&t, "server.public_url").as_str().unwrap(),
        "http://127.0.0.1:1003"
    );
    assert_eq!(
        get(&t, "data_dir").as_str().unwrap(),
        data.to_str().unwrap()
    );
    assert_eq!(
        get(&t, "storage.metadata_url").as_str().unwrap(),
        format!("sqlite://{}/flyte.db", data.display())
    );
}

#[test]
fn dumped_config_reads_back_as_a_file() {
    let home = tempfile::tempdir().unwrap();
    let out = flyte_rs(home.path())
        .args(["config", "dump", "--listen", "127.0.0.1:4321"])
        .env("FLYTE_RS_ADMIN__DOMAINS", "[dev, prod]")
        .output()
        .unwrap();
    assert!(out.status.success());
    let file = home.path().join("dumped.toml");
    std::fs::write(&file, &out.stdout).unwrap();
    let again = flyte_rs(home.path())
        .args(["config", "dump", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(
        String::from_utf8(again.stdout).unwrap(),
        String::from_utf8(out.stdout).unwrap()
    );
}

#[test]
fn invalid_config_fails_clearly() {
    let home = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("FLYTE_RS_SERVER__LISTEN", "not-an-address", "server.listen"),
        (
            "FLYTE_RS_SERVER__LISTN",
            "127.0.0.1:1",
            "unknown configuration variable FLYTE_RS_SERVER__LISTN",
        ),
        ("FLYTE_RS_PG_DATA", "/tmp/pg", "valid keys: FLYTE_RS_"),
        (
            "FLYTE_RS_STORAGE__METADATA_URL",
            "mysql://db",
            "storage.metadata_url",
        ),
        ("FLYTE_RS_LOGGING__FORMAT", "xml", "logging.format"),
        (
            "FLYTE_RS_ADMIN__SIGNED_URL_TTL_SECS",
            "0",
            "admin.signed_url_ttl_secs",
        ),
    ];
    for (key, value, expected) in cases {
        let out = flyte_rs(home.path())
            .args(["start"])
            .env(key, value)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{key}={value} must fail");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{key}={value}: {err}");
    }
    let out = flyte_rs(home.path())
        .args(["start", "--config", "/does/not/exist.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/does/not/exist.toml"));
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

/// Starts the binary on a random port; returns it and the ready text.
fn spawn_server(home: &Path) -> (Guard, String, String) {
    let child = flyte_rs(home)
        .args(["start", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(home.join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = Guard(child);
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut url = None;
    // The ready text ends with the console endpoint of the flytekit config.
    while url.is_none() || !text.trim_end().ends_with(url.as_deref().unwrap_or("\0")) {
        assert!(Instant::now() < deadline, "no ready line: {text}");
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            panic!("flyte-rs exited before ready: {text}");
        }
        if let Some(rest) = line.strip_prefix("flyte-rs is ready at ") {
            url = rest.split_whitespace().next().map(str::to_owned);
        }
        text.push_str(&line);
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in stdout.lines() {});
    (child, url.unwrap(), text)
}

fn wait_exit(Guard(child): &mut Guard, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("flyte-rs did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Guard, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test]
async fn start_prints_ready_line_and_stops_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    let (mut child, url, text) = spawn_server(home.path());
    let port = url.rsplit(':').next().unwrap();
    assert!(
        text.contains(&format!("endpoint: dns:///127.0.0.1:{port}")),
        "{text}"
    );
    assert!(text.contains("insecure: true"), "{text}");
    assert!(
        text.contains(&format!("endpoint: {url}")),
        "console endpoint: {text}"
    );

    let r = reqwest::get(format!("{url}/healthcheck")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(home.path().join("data").is_dir());

    signal(&child, "-TERM");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn stops_on_sigint() {
    let home = tempfile::tempdir().unwrap();
    let (mut child, url, _) = spawn_server(home.path());
    assert_eq!(
        reqwest::get(format!("{url}/healthcheck"))
            .await
            .unwrap()
            .status(),
        200
    );
    signal(&child, "-INT");
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let home = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = flyte_rs(home.path())
        .args(["start", "--listen", &addr, "--data-dir"])
        .arg(home.path().join("d"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&addr) && err.contains("server.listen"),
        "{err}"
    );
}
