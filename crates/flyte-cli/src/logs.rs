//! `flyte-rs logs`: the text of task attempts' logs. Each attempt's task events carry its log
//! links (`TaskExecution.closure.logs`); the local backend serves them from the same port,
//! `GET /logs/<project>/<domain>/<execution>/<node>/<attempt>.log` (docs/cli.md). `--follow`
//! polls each log and prints what was added, until the execution ends.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use flyteidl::admin;
use flyteidl::core::WorkflowExecutionIdentifier;

use crate::client::Client;
use crate::error::{CliError, CliResult};
use crate::get::is_marker;

const POLL: Duration = Duration::from_secs(1);
/// Sub-workflows and dynamic nodes nest; this deep is plenty for a terminal.
const MAX_DEPTH: usize = 4;

/// One attempt's log, as found in its task execution.
struct Attempt {
    node: String,
    attempt: u32,
    uri: String,
}

pub async fn logs(
    client: &mut Client,
    name: &str,
    node: Option<&str>,
    attempt: Option<u32>,
    follow: bool,
) -> CliResult<()> {
    let http = client.http.clone();
    let id = client.execution_id(name);
    // Bytes printed per log URI.
    let mut printed: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_header: Option<String> = None;
    loop {
        // Read the phase first: logs fetched after it said "done" are complete.
        let done = execution_done(&client.get_execution(name).await?);
        let attempts = attempts(client, &id, node, attempt).await?;
        if attempts.is_empty() && (!follow || done) {
            return Err(CliError::Usage(match node {
                Some(n) => format!(
                    "no task attempts with logs for node {n} of execution {name} (list its nodes with `flyte-rs get execution {name}`)"
                ),
                None => format!("execution {name} has no task attempts with logs yet"),
            }));
        }
        for a in &attempts {
            let offset = printed.get(&a.uri).copied().unwrap_or(0);
            let (text, offset) = match fetch(&http, &a.uri, offset).await? {
                // The server sent only what follows `offset`.
                Fetched::From(tail) => (tail, 0),
                Fetched::Whole(whole) => (whole, offset),
            };
            // Every attempt gets its header once, even with nothing logged yet.
            let first = !printed.contains_key(&a.uri);
            if text.len() <= offset && !first {
                continue;
            }
            let total =
                printed.get(&a.uri).copied().unwrap_or(0) + text.len().saturating_sub(offset);
            let header = format!("==> node {} attempt {} <==", a.node, a.attempt);
            if last_header.as_ref() != Some(&header) {
                eprintln!("{header}");
                last_header = Some(header);
            }
            let mut out = std::io::stdout().lock();
            let new = text.get(offset..).unwrap_or_default();
            if let Err(e) = out.write_all(new).and_then(|()| out.flush()) {
                crate::output::exit_on_write_error(&e);
            }
            printed.insert(a.uri.clone(), total);
        }
        if !follow || done {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

fn execution_done(e: &admin::Execution) -> bool {
    use flyteidl::core::workflow_execution::Phase as P;
    matches!(
        P::try_from(e.closure.as_ref().map_or(0, |c| c.phase)),
        Ok(P::Succeeded | P::Failed | P::Aborted | P::TimedOut)
    )
}

async fn attempts(
    client: &mut Client,
    id: &WorkflowExecutionIdentifier,
    node: Option<&str>,
    attempt: Option<u32>,
) -> CliResult<Vec<Attempt>> {
    let mut found = Vec::new();
    let mut parents = vec![(String::new(), 0usize)];
    while let Some((parent, depth)) = parents.pop() {
        let mut nodes = client.node_executions(id, &parent).await?;
        nodes.retain(|n| !is_marker(n));
        nodes.sort_by_key(|n| {
            n.closure
                .as_ref()
                .and_then(|c| c.created_at.as_ref())
                .map(|t| (t.seconds, t.nanos))
        });
        for n in nodes {
            let Some(node_id) = n.id.clone() else {
                continue;
            };
            if n.metadata.as_ref().is_some_and(|m| m.is_parent_node) && depth < MAX_DEPTH {
                parents.push((node_id.node_id.clone(), depth + 1));
            }
            if node.is_some_and(|wanted| wanted != node_id.node_id) {
                continue;
            }
            for t in client.task_executions(&node_id).await? {
                let retry = t.id.as_ref().map_or(0, |i| i.retry_attempt);
                if attempt.is_some_and(|a| a != retry) {
                    continue;
                }
                let Some(closure) = t.closure.as_ref() else {
                    continue;
                };
                for log in &closure.logs {
                    push_log(&mut found, node_id.node_id.clone(), retry, &log.uri);
                }
                // A map task's subtasks: one log per index and attempt (`n0[2]`).
                let subtasks = closure
                    .metadata
                    .iter()
                    .flat_map(|m| m.external_resources.iter());
                for sub in subtasks {
                    for log in &sub.logs {
                        let node = format!("{}[{}]", node_id.node_id, sub.index);
                        push_log(&mut found, node, sub.retry_attempt, &log.uri);
                    }
                }
            }
        }
    }
    Ok(found)
}

/// A log's bytes: from the offset asked for (the server honoured the range) or whole.
enum Fetched {
    From(Vec<u8>),
    Whole(Vec<u8>),
}

/// Fetches a log from `offset` on, asking with a `Range` header so a server that supports
/// ranges sends only what is new; one that does not sends it whole and the caller skips.
fn push_log(found: &mut Vec<Attempt>, node: String, attempt: u32, uri: &str) {
    let http = uri.starts_with("http://") || uri.starts_with("https://");
    if http && !found.iter().any(|a| a.uri == uri) {
        found.push(Attempt {
            node,
            attempt,
            uri: uri.to_string(),
        });
    }
}

async fn fetch(http: &reqwest::Client, uri: &str, offset: usize) -> CliResult<Fetched> {
    let mut request = http.get(uri);
    if offset > 0 {
        request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
    }
    let response = request
        .send()
        .await
        .map_err(|e| CliError::Http(format!("cannot fetch the log {uri}: {e}")))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_FOUND {
        // Not written yet (the attempt is queued).
        return Ok(Fetched::Whole(Vec::new()));
    }
    if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
        return Ok(Fetched::From(Vec::new()));
    }
    if !status.is_success() {
        return Err(CliError::Http(format!(
            "cannot fetch the log {uri}: HTTP {status}"
        )));
    }
    let partial = status == reqwest::StatusCode::PARTIAL_CONTENT;
    let bytes = response
        .bytes()
        .await
        .map(|b| b.to_vec())
        .map_err(|e| CliError::Http(format!("cannot read the log {uri}: {e}")))?;
    Ok(if partial {
        Fetched::From(bytes)
    } else {
        Fetched::Whole(bytes)
    })
}
