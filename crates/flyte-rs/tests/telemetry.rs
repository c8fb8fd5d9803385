//! Trace export: with `telemetry.otlp_endpoint` set, spans reach an OTLP/HTTP collector
//! (protobuf POST to `/v1/traces`); the config key parses; the traces URL is derived.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use flyte_rs::config::{Config, LoggingConfig, TelemetryConfig};

#[test]
fn traces_url_gets_the_signal_path_only_when_it_has_none() {
    use flyte_rs::telemetry::otlp_traces_url;
    assert_eq!(
        otlp_traces_url("http://localhost:4318").unwrap(),
        "http://localhost:4318/v1/traces"
    );
    assert_eq!(
        otlp_traces_url("http://localhost:4318/").unwrap(),
        "http://localhost:4318/v1/traces"
    );
    assert_eq!(
        otlp_traces_url("http://c:4318/custom/traces").unwrap(),
        "http://c:4318/custom/traces"
    );
    assert!(otlp_traces_url("not a url").is_err());
}

#[test]
fn otlp_is_off_by_default_and_configurable() {
    assert_eq!(Config::default().telemetry.otlp_endpoint, None);
    let c: Config =
        toml::from_str("[telemetry]\notlp_endpoint = \"http://collector:4318\"\n").expect("parses");
    assert_eq!(
        c.telemetry.otlp_endpoint.as_deref(),
        Some("http://collector:4318")
    );
}

/// The only test here that installs the global subscriber.
#[test]
fn spans_are_exported_over_otlp_http() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let n = stream.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
            );
            let _ = tx.send(head);
        }
    });

    let config = Config {
        logging: LoggingConfig {
            level: "info".into(),
            ..Default::default()
        },
        telemetry: TelemetryConfig {
            otlp_endpoint: Some(format!("http://{addr}")),
        },
        ..Default::default()
    };
    flyte_rs::telemetry::init(&config).expect("tracing with OTLP export");
    {
        let span = tracing::info_span!("api", service = "AdminService", method = "ListProjects");
        let _entered = span.enter();
        tracing::info!("inside a span");
    }
    flyte_rs::telemetry::shutdown();

    let head = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the collector received an export");
    let first = head.lines().next().unwrap_or_default();
    assert!(first.starts_with("POST /v1/traces "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/x-protobuf"),
        "{head}"
    );
}
