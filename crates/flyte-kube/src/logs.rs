//! Log links of a task's pod, rendered from `kubernetes.log_links` templates as propeller's
//! log plugins render them (flyteplugins `go/tasks/pluginmachinery/tasklog/template.go`
//! `TemplateLogPlugin.GetTaskLogs`, `go/tasks/logs/logging_utils.go`
//! `GetLogsForContainerInPod`): `{{ .podName }}`, `{{ .namespace }}`, … (case-insensitive,
//! `.` or `$`), a variable without a value left as written.

use flyte_engine::backend::AttemptKey;
use flyteidl::core::{TaskLog, TaskTemplate, task_log};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One `kubernetes.log_links` entry (propeller's `logs.templates[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLink {
    /// The link's name in the console (`Kubernetes Logs`, `CloudWatch Logs`, …); the
    /// container's suffix (` (User)`) is appended.
    pub display_name: String,
    /// One link per template.
    pub template_uris: Vec<String>,
    /// `json`, `csv` or `unknown` (the default): how the linked logs are formatted.
    #[serde(default)]
    pub message_format: Option<String>,
    /// Shown while the task is still queued (propeller `showWhilePending`).
    #[serde(default)]
    pub show_while_pending: bool,
    /// Hidden once the task finished (propeller `hideOnceFinished`).
    #[serde(default)]
    pub hide_once_finished: bool,
}

impl LogLink {
    fn format(&self) -> Result<task_log::MessageFormat, String> {
        match self
            .message_format
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("unknown") | Some("") => Ok(task_log::MessageFormat::Unknown),
            Some("json") => Ok(task_log::MessageFormat::Json),
            Some("csv") => Ok(task_log::MessageFormat::Csv),
            Some(other) => Err(format!(
                "kubernetes.log_links: message_format {other:?} of {:?} is not json, csv or unknown",
                self.display_name
            )),
        }
    }

    /// Checks what can be checked at start; the message names the entry.
    pub fn validate(&self) -> Result<(), String> {
        self.format().map(|_| ())
    }
}

/// The suffix of the primary container's links (the pod plugin's `nameSuffix`).
pub const USER_LOG_SUFFIX: &str = " (User)";

/// The links of `pod`'s primary container `primary` for the attempt `key` of `template`.
pub fn task_logs(
    links: &[LogLink],
    pod: &Pod,
    primary: &str,
    key: &AttemptKey,
    template: &TaskTemplate,
    now: Timestamp,
) -> Vec<TaskLog> {
    if links.is_empty() {
        return Vec::new();
    }
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let container_id = status
        .container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == primary)
        .and_then(|c| c.container_id.clone())
        .unwrap_or_default();
    // Runtimes prefix it (`containerd://`); log shippers strip that.
    let container_id = container_id
        .split_once("://")
        .map_or(container_id.clone(), |(_, id)| id.to_string());
    let start = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    let task = template.id.clone().unwrap_or_default();
    let generated = flyte_engine::backend::template::generated_name(key);
    let vars: Vec<(&str, String)> = vec![
        ("logName", USER_LOG_SUFFIX.to_string()),
        ("podName", pod.metadata.name.clone().unwrap_or_default()),
        ("podUID", pod.metadata.uid.clone().unwrap_or_default()),
        (
            "namespace",
            pod.metadata.namespace.clone().unwrap_or_default(),
        ),
        ("containerName", primary.to_string()),
        ("containerID", container_id),
        ("hostname", spec.hostname.clone().unwrap_or_default()),
        ("nodeName", spec.node_name.clone().unwrap_or_default()),
        ("nodeID", key.node_id.clone()),
        ("generatedName", generated),
        ("taskRetryAttempt", key.retry_attempt.to_string()),
        ("taskID", task.name),
        ("taskVersion", task.version),
        ("taskProject", task.project),
        ("taskDomain", task.domain),
        ("executionName", key.execution.clone()),
        ("executionProject", key.project.clone()),
        ("executionDomain", key.domain.clone()),
        ("podRFC3339StartTime", rfc3339(start)),
        ("podRFC3339FinishTime", rfc3339(now)),
        ("podUnixStartTime", start.as_second().to_string()),
        ("podUnixFinishTime", now.as_second().to_string()),
    ];
    let mut out = Vec::new();
    for link in links {
        let format = link.format().unwrap_or(task_log::MessageFormat::Unknown);
        for uri in &link.template_uris {
            out.push(TaskLog {
                uri: render(uri, &vars),
                name: render(&link.display_name, &vars) + USER_LOG_SUFFIX,
                message_format: format as i32,
                show_while_pending: link.show_while_pending,
                hide_once_finished: link.hide_once_finished,
                ..Default::default()
            });
        }
    }
    out
}

fn rfc3339(t: Timestamp) -> String {
    // Whole seconds, `Z`: Go's time.RFC3339 of a Unix time.
    Timestamp::from_second(t.as_second())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Replaces each `{{ .name }}` / `{{$name}}` (any case, any spaces) with its value; unknown
/// variables and those without a value stay as written (`replaceAll`).
pub fn render(template: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = after[..close].trim();
        let name = inner.strip_prefix('.').or_else(|| inner.strip_prefix('$'));
        let value = name.and_then(|n| {
            vars.iter()
                .find(|(v, value)| v.eq_ignore_ascii_case(n) && !value.is_empty())
                .map(|(_, value)| value.as_str())
        });
        match value {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[open..open + 2 + close + 2]),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AttemptKey {
        AttemptKey {
            project: "flytesnacks".into(),
            domain: "development".into(),
            execution: "f8a3c9e2b1d0".into(),
            node_id: "n0".into(),
            retry_attempt: 1,
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "f8a3c9e2b1d0-n0-1", "namespace": "flytesnacks-development",
                "uid": "0e8f3c1a-1111-2222-3333-444455556666",
                "creationTimestamp": "2026-12-07T12:00:00Z"},
            "spec": {"containers": [{"name": "f8a3c9e2b1d0-n0-1"}], "nodeName": "node-7",
                "hostname": "h"},
            "status": {"phase": "Running", "containerStatuses": [{"name": "f8a3c9e2b1d0-n0-1",
                "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                "containerID": "containerd://abc123"}]}
        }))
        .unwrap()
    }

    #[test]
    fn propellers_template_variables_are_rendered() {
        let template = TaskTemplate {
            id: Some(flyteidl::core::Identifier {
                project: "flytesnacks".into(),
                domain: "development".into(),
                name: "examples.basics.say_hello".into(),
                version: "v1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let links = vec![
            // propeller's default Kubernetes dashboard link and CloudWatch link.
            LogLink {
                display_name: "Kubernetes Logs".into(),
                template_uris: vec![
                    "https://dash.example.com/#!/log/{{ .namespace }}/{{ .podName }}/pod?namespace={{ .namespace }}"
                        .into(),
                ],
                message_format: Some("json".into()),
                show_while_pending: false,
                hide_once_finished: false,
            },
            LogLink {
                display_name: "Cloudwatch Logs".into(),
                template_uris: vec![
                    "https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:group=/flyte;stream=var.log.containers.{{ .podName }}_{{ .namespace }}_{{ .containerName }}-{{ .containerId }}.log"
                        .into(),
                    "https://logs.example.com/?q={{$executionName}}/{{.NodeID}}/{{ .taskRetryAttempt }}&t={{ .taskID }}@{{ .taskVersion }}&from={{ .podUnixStartTime }}&to={{ .podUnixFinishTime }}&s={{ .podRFC3339StartTime }}&node={{ .nodeName }}&uid={{ .podUID }}&x={{ .unknownVar }}"
                        .into(),
                ],
                message_format: None,
                show_while_pending: true,
                hide_once_finished: true,
            },
        ];
        let now = "2026-12-07T12:05:00Z".parse().unwrap();
        let logs = task_logs(&links, &pod(), "f8a3c9e2b1d0-n0-1", &key(), &template, now);
        assert_eq!(logs.len(), 3);
        assert_eq!(logs[0].name, "Kubernetes Logs (User)");
        assert_eq!(
            logs[0].uri,
            "https://dash.example.com/#!/log/flytesnacks-development/f8a3c9e2b1d0-n0-1/pod?namespace=flytesnacks-development"
        );
        assert_eq!(logs[0].message_format, task_log::MessageFormat::Json as i32);
        assert_eq!(
            logs[1].uri,
            "https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEventViewer:group=/flyte;stream=var.log.containers.f8a3c9e2b1d0-n0-1_flytesnacks-development_f8a3c9e2b1d0-n0-1-abc123.log"
        );
        assert_eq!(
            logs[2].uri,
            "https://logs.example.com/?q=f8a3c9e2b1d0/n0/1&t=examples.basics.say_hello@v1&from=1796644800&to=1796645100&s=2026-12-07T12:00:00Z&node=node-7&uid=0e8f3c1a-1111-2222-3333-444455556666&x={{ .unknownVar }}"
        );
        assert!(logs[2].show_while_pending && logs[2].hide_once_finished);
        assert!(task_logs(&[], &pod(), "x", &key(), &template, now).is_empty());
    }

    #[test]
    fn a_bad_message_format_is_named() {
        let link = LogLink {
            display_name: "Mine".into(),
            template_uris: vec![],
            message_format: Some("xml".into()),
            show_while_pending: false,
            hide_once_finished: false,
        };
        assert!(link.validate().unwrap_err().contains("\"Mine\""));
    }
}
