//! The Grafana dashboards in `deploy/dashboards/` query only metrics the server exports.
//!
//! Every metric is declared once, in its crate's `metrics::ALL` table;
//! `flyte_rs::telemetry::render_metrics` lists every declared family in `/metrics` (a
//! `# HELP`/`# TYPE` header until it has samples, since the exporter renders a metric only once
//! recorded). The test scrapes a running server after a few calls and checks every metric
//! name in every dashboard expression against the families of that scrape (a histogram also
//! answers to `_bucket`, `_sum` and `_count`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use flyte_rs::testing::TestServer;
use flyteidl::admin::ProjectListRequest;
use flyteidl::service::admin_service_client::AdminServiceClient;

fn dashboards_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/dashboards")
}

/// Every dashboard: file name and parsed JSON.
fn dashboards() -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dashboards_dir()).expect("deploy/dashboards exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let json: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
            out.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every PromQL expression in a dashboard: panel targets and templating queries.
fn expressions(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "definition", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => expressions(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| expressions(v, out)),
        _ => {}
    }
}

/// Metric names in a PromQL expression: identifiers outside strings and `{...}` label
/// matchers that are not functions, keywords or labels in `by (...)`/`without (...)`.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "le", // aggregation operators (`sum by (x) (...)`):
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
    ];
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let (mut i, mut depth_brace, mut in_str) = (0, 0, false);
    let mut in_grouping = false;
    while i < chars.len() {
        let c = chars[i];
        if in_str {
            if c == '"' && chars[i - 1] != '\\' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => {
                // A range: skip to its end (`[5m]`, `[$__rate_interval]`).
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
            }
            ')' => in_grouping = false,
            '$' => {
                // A Grafana variable.
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                continue;
            }
            c if depth_brace == 0 && (c.is_ascii_alphabetic() || c == '_' || c == ':') => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j] == ' ' {
                    j += 1;
                }
                let is_call = j < chars.len() && chars[j] == '(';
                if word == "by" || word == "without" || word == "on" || word == "ignoring" {
                    in_grouping = true;
                } else if !is_call && !in_grouping && !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    // Numbers in exponents (`1e3`) cannot start an identifier here; `label_values(m, label)`
    // puts a label after the metric: drop it.
    if expr.trim_start().starts_with("label_values(") {
        let inner = expr.trim_start().trim_start_matches("label_values(");
        if let Some((_, label)) = inner.split_once(',') {
            names.remove(label.trim().trim_end_matches(')').trim());
        }
    }
    names
}

/// Families in a `/metrics` scrape: name -> type.
fn families(scrape: &str) -> BTreeMap<String, String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            Some((parts.next()?.to_string(), parts.next()?.to_string()))
        })
        .collect()
}

fn exported(name: &str, families: &BTreeMap<String, String>) -> bool {
    if families.contains_key(name) {
        return true;
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(kind) = families.get(base)
        {
            return kind == "histogram" || (kind == "summary" && suffix != "_bucket");
        }
    }
    false
}

#[test]
fn promql_names_are_extracted() {
    let names = metric_names(
        "histogram_quantile(0.99, sum by (le, service) (rate(a_seconds_bucket{code!~\"Ok|x\", \
         project=~\"$project\"}[$__rate_interval]))) / on (x) b_total",
    );
    assert_eq!(
        names,
        ["a_seconds_bucket", "b_total"].map(String::from).into()
    );
    assert_eq!(
        metric_names("label_values(flyte_x_total, project)"),
        ["flyte_x_total"].map(String::from).into()
    );
}

#[test]
fn dashboards_are_importable() {
    let all = dashboards();
    let files: Vec<&str> = all.iter().map(|(f, _)| f.as_str()).collect();
    for expected in ["control-plane.json", "engine.json", "executions.json"] {
        assert!(files.contains(&expected), "{expected} missing: {files:?}");
    }
    for (file, d) in &all {
        assert!(
            d["schemaVersion"].as_u64().unwrap_or(0) >= 30,
            "{file}: schemaVersion"
        );
        assert!(
            d["uid"].as_str().is_some_and(|u| !u.is_empty()),
            "{file}: uid"
        );
        let inputs = d["__inputs"].as_array().expect("__inputs");
        assert!(
            inputs
                .iter()
                .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
            "{file}: a DS_PROMETHEUS datasource input"
        );
        let panels = d["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{file}: panels");
        let mut ids = BTreeSet::new();
        for p in panels {
            assert!(
                ids.insert(p["id"].as_u64().expect("panel id")),
                "{file}: ids unique"
            );
            assert_eq!(
                p["datasource"]["uid"], "${DS_PROMETHEUS}",
                "{file}: panel datasource"
            );
            for t in p["targets"].as_array().expect("targets") {
                assert_eq!(
                    t["datasource"]["uid"], "${DS_PROMETHEUS}",
                    "{file}: target datasource"
                );
            }
        }
    }
    // Users' executions: filtered by project and domain.
    let (_, ex) = all.iter().find(|(f, _)| f == "executions.json").unwrap();
    let vars: Vec<&str> = ex["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(vars, ["project", "domain"]);
}

#[test]
fn declared_metrics_follow_prometheus_conventions() {
    let mut seen = BTreeSet::new();
    for &(name, kind, help) in flyte_rs::telemetry::inventory() {
        assert!(seen.insert(name), "{name} declared twice");
        assert!(name.starts_with("flyte_"), "{name}: the flyte_ prefix");
        assert!(!help.is_empty(), "{name}: help text");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}: snake_case"
        );
        match kind {
            "counter" => assert!(name.ends_with("_total"), "{name}: counters end in _total"),
            "gauge" | "histogram" => {
                assert!(
                    !name.ends_with("_total"),
                    "{name}: only counters end in _total"
                )
            }
            other => panic!("{name}: unknown type {other}"),
        }
        assert!(
            !name.ends_with("_milliseconds") && !name.ends_with("_ms"),
            "{name}: base units (seconds)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_metric_is_exported() {
    let server = TestServer::start().await.expect("server starts");
    let http = reqwest::Client::new();

    // Liveness, readiness (checks the store), one gRPC call.
    let live = http.get(server.url("/healthcheck")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let channel = tonic::transport::Endpoint::from_shared(server.grpc_endpoint())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap();
    AdminServiceClient::new(channel)
        .list_projects(ProjectListRequest {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("ListProjects");
    // A gRPC error: its code is counted (whether sent in headers or trailers).
    let channel = tonic::transport::Endpoint::from_shared(server.grpc_endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let err = AdminServiceClient::new(channel)
        .get_execution(flyteidl::admin::WorkflowExecutionGetRequest {
            id: Some(flyteidl::core::WorkflowExecutionIdentifier {
                project: "flytesnacks".into(),
                domain: "development".into(),
                name: "nope".into(),
                ..Default::default()
            }),
        })
        .await
        .expect_err("no such execution");
    let code = format!("code=\"{:?}\"", err.code());

    let scrape = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let families = families(&scrape);

    // Every declared metric is listed, with the type it is declared with.
    for &(name, kind, _) in flyte_rs::telemetry::inventory() {
        assert_eq!(
            families.get(name).map(String::as_str),
            Some(kind),
            "{name} in /metrics as a {kind}"
        );
    }
    // Samples were recorded: the gRPC call and the store read behind it.
    assert!(
        scrape
            .lines()
            .any(|l| l.starts_with("flyte_admin_api_requests_total{")
                && l.contains("method=\"ListProjects\"")
                && l.contains("code=\"Ok\"")),
        "ListProjects counted:\n{scrape}"
    );
    assert!(
        scrape
            .lines()
            .any(|l| l.starts_with("flyte_admin_api_requests_total{")
                && l.contains("method=\"GetExecution\"")
                && l.contains(&code)),
        "GetExecution counted with {code}:\n{scrape}"
    );
    assert!(
        scrape
            .lines()
            .any(|l| l.starts_with("flyte_admin_api_request_duration_seconds_bucket{")),
        "API latency is a histogram with buckets"
    );
    assert!(
        scrape
            .lines()
            .any(|l| l.starts_with("flyte_store_query_duration_seconds_bucket{")),
        "store latency recorded"
    );

    let mut missing = Vec::new();
    for (file, d) in dashboards() {
        let mut exprs = Vec::new();
        expressions(&d, &mut exprs);
        assert!(!exprs.is_empty(), "{file}: no queries");
        for expr in exprs {
            for name in metric_names(&expr) {
                if !exported(&name, &families) {
                    missing.push(format!("{file}: {name} (in {expr})"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "dashboard metrics the server does not export:\n{}",
        missing.join("\n")
    );
    server.shutdown().await.unwrap();
}
