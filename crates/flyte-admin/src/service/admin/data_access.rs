//! What a user reads back from a run outside the execution reads: the data behind `flyte://`
//! URLs (DataProxyService `GetData`, used by `pyflyte fetch` and `FlyteRemote.get`), a node's
//! deck (`CreateDownloadLink`), and the node executions a task execution spawned
//! (`ListNodeExecutionsForTask`). Semantics follow flyteadmin's `dataproxy/service.go` and
//! `common/flyte_url.go`.

#![allow(deprecated)] // closure output fields

use flyte_store::{NodeExecutionKey, TaskExecutionRecord};
use flyteidl::admin::{
    FlyteUrLs, NodeExecutionClosure, NodeExecutionForTaskListRequest, NodeExecutionList,
    TaskExecutionClosure, node_execution_closure, task_execution_closure,
};
use flyteidl::core::{Literal, LiteralMap, NodeExecutionIdentifier};
use prost::Message;

use super::common::{decode_stored, missing};
use super::lists::{self, ListArgs};
use super::node_executions::{self, NODE_LIST_FIELDS, to_node_execution};
use crate::error::{AdminError, AdminResult, quoted};
use crate::state::AdminState;

/// What a `flyte://` URL points at (flyteadmin's `ArtifactType`: `i`, `o`, `d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Artifact {
    Inputs,
    Outputs,
    Deck,
}

/// A parsed `flyte://v1/<project>/<domain>/<execution>/<node>[/<attempt>]/<i|o|d>[/<name>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlyteUrl {
    pub node: NodeExecutionKey,
    /// A task execution's attempt; `None`: the node's own data.
    pub attempt: Option<u32>,
    pub artifact: Artifact,
    /// One input or output by name; `None`: the whole map.
    pub name: Option<String>,
}

const URL_FORMS: &str = "flyte://v1/<project>/<domain>/<execution>/<node>[/<attempt>]/<i|o|d>[/<name>] \
                         (i inputs, o outputs, d the deck; a name only with i or o)";

fn url_part_ok(part: &str) -> bool {
    !part.is_empty()
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(crate) fn parse_flyte_url(url: &str) -> AdminResult<FlyteUrl> {
    let refuse = |why: &str| {
        AdminError::invalid(format!(
            "flyte_url {} is invalid: {why}; expected {URL_FORMS}",
            quoted(url)
        ))
    };
    let Some(rest) = url.strip_prefix("flyte://v1/") else {
        return Err(refuse("it must start with flyte://v1/"));
    };
    let parts: Vec<&str> = rest.split('/').collect();
    if parts.len() < 5 || parts.len() > 7 {
        return Err(refuse("wrong number of path segments"));
    }
    if let Some(bad) = parts.iter().find(|p| !url_part_ok(p)) {
        return Err(refuse(&format!(
            "segment {} may hold only letters, digits, '_' and '-'",
            quoted(bad)
        )));
    }
    let (project, domain, execution, node) = (parts[0], parts[1], parts[2], parts[3]);
    let mut tail = &parts[4..];
    let mut attempt = None;
    if let Some(first) = tail.first()
        && first.chars().all(|c| c.is_ascii_digit())
    {
        attempt = Some(
            first
                .parse::<u32>()
                .map_err(|_| refuse("attempt out of range"))?,
        );
        tail = &tail[1..];
    }
    let (artifact, name) = match tail {
        ["i"] => (Artifact::Inputs, None),
        ["o"] => (Artifact::Outputs, None),
        ["d"] => (Artifact::Deck, None),
        ["i", name] => (Artifact::Inputs, Some(name.to_string())),
        ["o", name] => (Artifact::Outputs, Some(name.to_string())),
        _ => return Err(refuse("after the node comes i, o or d")),
    };
    if artifact == Artifact::Deck && attempt.is_some() {
        return Err(AdminError::invalid(format!(
            "flyte_url {}: a deck belongs to the node, not to one attempt; use {}",
            quoted(url),
            quoted(&format!(
                "flyte://v1/{project}/{domain}/{execution}/{node}/d"
            ))
        )));
    }
    Ok(FlyteUrl {
        node: NodeExecutionKey {
            execution: flyte_store::ExecutionKey {
                project: project.to_string(),
                domain: domain.to_string(),
                name: execution.to_string(),
            },
            node_id: node.to_string(),
        },
        attempt,
        artifact,
        name,
    })
}

/// The `flyte://` URLs of a node execution (flyteadmin `FlyteURLsFromNodeExecutionID`).
pub(crate) fn node_flyte_urls(key: &NodeExecutionKey, has_deck: bool) -> FlyteUrLs {
    let e = &key.execution;
    let base = format!(
        "flyte://v1/{}/{}/{}/{}",
        e.project, e.domain, e.name, key.node_id
    );
    FlyteUrLs {
        inputs: format!("{base}/i"),
        outputs: format!("{base}/o"),
        deck: if has_deck {
            format!("{base}/d")
        } else {
            String::new()
        },
    }
}

/// Reads a literal map from a blob of this server's store, whatever its size (GetData
/// returns it whole, as flyteadmin does).
async fn read_map(state: &AdminState, url: &str, what: &str) -> AdminResult<LiteralMap> {
    if let Some(map) = super::inline_inputs::decode(url) {
        return map;
    }
    let path = state.blob.path_from_native_url(url).ok_or_else(|| {
        AdminError::FailedPrecondition(format!(
            "{what} are at {} outside this server's blob store; read them from there",
            quoted(url)
        ))
    })?;
    match state.blob.get(&path).await {
        Ok(bytes) => LiteralMap::decode(bytes)
            .map_err(|e| AdminError::Internal(format!("{url} is not a literal map: {e}"))),
        Err(flyte_blob::BlobError::NotFound(_)) => {
            Err(AdminError::NotFound(format!("{what} not found at {url}")))
        }
        Err(err) => Err(AdminError::Internal(format!("reading {url}: {err}"))),
    }
}

fn node_label(key: &NodeExecutionKey) -> String {
    format!(
        "node {} of execution {}",
        quoted(&key.node_id),
        quoted(&format!(
            "{}/{}/{}",
            key.execution.project, key.execution.domain, key.execution.name
        ))
    )
}

/// The task execution of one attempt of a node; NOT_FOUND names the attempts there are.
async fn task_attempt(
    state: &AdminState,
    node: &NodeExecutionKey,
    attempt: u32,
) -> AdminResult<TaskExecutionRecord> {
    let all = state
        .store
        .get_task_executions_of_nodes(&node.execution, std::slice::from_ref(&node.node_id))
        .await?;
    let known: Vec<String> = all
        .iter()
        .map(|t| t.key.retry_attempt.to_string())
        .collect();
    all.into_iter()
        .find(|t| t.key.retry_attempt == attempt)
        .ok_or_else(|| {
            AdminError::NotFound(format!(
                "attempt {attempt} of {} not found (its task attempts: {})",
                node_label(node),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
}

/// What `GetData` answers: a whole map or one literal of it.
pub(crate) enum Data {
    Map(LiteralMap),
    One(Box<Literal>),
}

/// The inputs or outputs a `flyte://` URL names (not a deck: see [`deck_uri`]).
pub(crate) async fn literal_data(state: &AdminState, url: &FlyteUrl) -> AdminResult<Data> {
    let record = node_executions::get_record(state, &url.node).await?;
    let label = match url.attempt {
        Some(a) => format!("attempt {a} of {}", node_label(&url.node)),
        None => node_label(&url.node),
    };
    let output_result = match url.attempt {
        Some(a) => {
            let task = task_attempt(state, &url.node, a).await?;
            let closure: TaskExecutionClosure =
                decode_stored(&task.closure, "task execution closure")?;
            match closure.output_result {
                Some(task_execution_closure::OutputResult::OutputUri(u)) => Some(Ok(u)),
                Some(task_execution_closure::OutputResult::OutputData(m)) => Some(Err(m)),
                _ => None,
            }
        }
        None => {
            let closure: NodeExecutionClosure =
                decode_stored(&record.closure, "node execution closure")?;
            match closure.output_result {
                Some(node_execution_closure::OutputResult::OutputUri(u)) => Some(Ok(u)),
                Some(node_execution_closure::OutputResult::OutputData(m)) => Some(Err(m)),
                _ => None,
            }
        }
    };
    let (map, what) = match url.artifact {
        Artifact::Inputs => {
            if record.input_uri.is_empty() {
                return Err(AdminError::NotFound(format!(
                    "inputs of {label} not found: the node has not started (phase {})",
                    record.phase
                )));
            }
            (
                read_map(state, &record.input_uri, &format!("inputs of {label}")).await?,
                "inputs",
            )
        }
        Artifact::Outputs => match output_result {
            Some(Ok(uri)) if !uri.is_empty() => (
                read_map(state, &uri, &format!("outputs of {label}")).await?,
                "outputs",
            ),
            Some(Err(map)) => (map, "outputs"),
            _ => {
                return Err(AdminError::NotFound(format!(
                    "outputs of {label} not found: the node is {} and produced none",
                    record.phase
                )));
            }
        },
        Artifact::Deck => {
            return Err(AdminError::invalid(
                "a deck is read through a download link",
            ));
        }
    };
    match &url.name {
        None => Ok(Data::Map(map)),
        Some(name) => match map.literals.get(name) {
            Some(lit) => Ok(Data::One(Box::new(lit.clone()))),
            None => {
                let mut names: Vec<&str> = map.literals.keys().map(String::as_str).collect();
                names.sort_unstable();
                Err(AdminError::invalid(format!(
                    "name {} not found in the {what} of {label} (it has: {})",
                    quoted(name),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )))
            }
        },
    }
}

/// The store path of a node's deck: the node's `deck_uri`, which must exist in the blob
/// store. NOT_FOUND when the task wrote no deck (or it is not written yet).
pub(crate) async fn deck_path(
    state: &AdminState,
    id: Option<&NodeExecutionIdentifier>,
) -> AdminResult<String> {
    let key = node_executions::node_key(id)?;
    let record = node_executions::get_record(state, &key).await?;
    let closure: NodeExecutionClosure = decode_stored(&record.closure, "node execution closure")?;
    if closure.deck_uri.is_empty() {
        return Err(AdminError::NotFound(format!(
            "{} has no deck: its task wrote none (decks come from tasks with enable_deck=True, \
             reported when the task ends; the node is {})",
            node_label(&key),
            record.phase
        )));
    }
    let path = state
        .blob
        .path_from_native_url(&closure.deck_uri)
        .ok_or_else(|| {
            AdminError::FailedPrecondition(format!(
                "the deck of {} is at {}, outside this server's blob store",
                node_label(&key),
                quoted(&closure.deck_uri)
            ))
        })?;
    match state.blob.head(&path).await {
        Ok(Some(_)) => Ok(path),
        Ok(None) => Err(AdminError::NotFound(format!(
            "the deck of {} ({}) does not exist yet; try again later",
            node_label(&key),
            closure.deck_uri
        ))),
        Err(err) => Err(AdminError::Internal(format!(
            "checking {}: {err}",
            closure.deck_uri
        ))),
    }
}

/// `ListNodeExecutionsForTask`: the node executions a task execution spawned (a dynamic
/// task's workflow): the children of its node made under that attempt.
pub(crate) async fn list_for_task(
    state: &AdminState,
    request: &NodeExecutionForTaskListRequest,
) -> AdminResult<tonic::Response<NodeExecutionList>> {
    let task = request
        .task_execution_id
        .as_ref()
        .ok_or_else(|| missing("task_execution_id"))?;
    let node = node_executions::node_key(task.node_execution_id.as_ref())?;
    node_executions::get_record(state, &node).await?;
    let attempt = task_attempt(state, &node, task.retry_attempt).await?;
    if let Some(want) = &task.task_id
        && !want.name.is_empty()
        && (want.name != attempt.key.task.name || want.version != attempt.key.task.version)
    {
        return Err(AdminError::NotFound(format!(
            "{} ran task {}@{}, not {}@{}",
            node_label(&node),
            attempt.key.task.name,
            attempt.key.task.version,
            want.name,
            want.version
        )));
    }
    let mut query = lists::query(
        ListArgs {
            limit: request.limit,
            token: &request.token,
            filters: &request.filters,
            sort_by: request.sort_by.as_ref(),
        },
        &NODE_LIST_FIELDS,
    )?;
    // Children made under another attempt of the node belong to that attempt's task
    // execution (their retry group is the parent's attempt; empty on rows older than the
    // column). Filtered in the query, so pages are full until the last.
    query.filters.push(flyte_store::Filter {
        entity: None,
        field: "retry_group".into(),
        op: flyte_store::FilterOp::ValueIn,
        values: vec![String::new(), task.retry_attempt.to_string()],
    });
    let page = state
        .store
        .list_node_executions(&node.execution, Some(&node.node_id), &query)
        .await?;
    let node_executions = page
        .items
        .iter()
        .map(to_node_execution)
        .collect::<AdminResult<Vec<_>>>()?;
    Ok(tonic::Response::new(NodeExecutionList {
        node_executions,
        token: page.next_token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flyte_urls_parse_as_flyteadmin_reads_them() {
        let u = parse_flyte_url("flyte://v1/p/d/e1/n0/o").unwrap();
        assert_eq!(
            (u.node.node_id.as_str(), u.attempt, u.artifact, u.name),
            ("n0", None, Artifact::Outputs, None)
        );
        let u = parse_flyte_url("flyte://v1/p/d/e1/n0-0-dn1/2/i/x_1").unwrap();
        assert_eq!(
            (u.node.node_id.as_str(), u.attempt, u.artifact, u.name),
            ("n0-0-dn1", Some(2), Artifact::Inputs, Some("x_1".into()))
        );
        assert_eq!(
            parse_flyte_url("flyte://v1/p/d/e1/n0/d").unwrap().artifact,
            Artifact::Deck
        );
        for bad in [
            "flyte://v1/p/d/e1/n0",
            "flyte://v1/p/d/e1/n0/x",
            "flyte://v1/p/d/e1/n0/d/name",
            "flyte://v1/p/d/e1/n0/0/d",
            "flyte://v2/p/d/e1/n0/o",
            "flyte://v1/p/d/e 1/n0/o",
            "flyte://v1/p/d/e1/n0/o/a/b",
            "flyte://v1/p/d/e1/n0/99999999999/o",
        ] {
            let err = parse_flyte_url(bad).unwrap_err();
            assert!(
                matches!(err, AdminError::InvalidArgument(_)),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn node_urls_name_the_deck_only_when_there_is_one() {
        let key = NodeExecutionKey {
            execution: flyte_store::ExecutionKey {
                project: "p".into(),
                domain: "d".into(),
                name: "e".into(),
            },
            node_id: "n1".into(),
        };
        let urls = node_flyte_urls(&key, false);
        assert_eq!(urls.outputs, "flyte://v1/p/d/e/n1/o");
        assert_eq!(urls.deck, "");
        assert_eq!(node_flyte_urls(&key, true).deck, "flyte://v1/p/d/e/n1/d");
    }
}
