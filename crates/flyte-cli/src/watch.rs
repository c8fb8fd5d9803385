//! `flyte-rs watch`: follows an execution until it ends. On a terminal, a progress bar of
//! nodes done and a line of running nodes with their durations; piped, one plain line per
//! phase change (stable for scripts and logs). Exit code by outcome (docs/cli.md).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use flyteidl::admin::{self, ObjectGetRequest};
use flyteidl::core::{node_execution, workflow_execution};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::Common;
use crate::client::Client;
use crate::error::{CliResult, exit};
use crate::get::{execution_error, execution_phase, is_marker, node_phase};
use crate::output::{Format, human_duration, phase_styled, print_data, proto_duration};

const POLL: Duration = Duration::from_secs(1);

pub async fn watch(client: &mut Client, name: &str, common: &Common) -> CliResult<ExitCode> {
    let tty = std::io::stdout().is_terminal() && common.output == Format::Table;
    let colour = common.colour();
    let mut exec = client.get_execution(name).await?;
    let total = planned_nodes(client, &exec).await;
    let bar = tty.then(|| progress_bar(total));
    let mut seen_exec_phase = -1;
    let mut seen_nodes: BTreeMap<String, i32> = BTreeMap::new();
    let id = client.execution_id(name);
    loop {
        let phase = exec.closure.as_ref().map_or(0, |c| c.phase);
        let mut nodes: Vec<admin::NodeExecution> = client
            .node_executions(&id, "")
            .await?
            .into_iter()
            .filter(|n| !is_marker(n))
            .collect();
        // In the order they started, so piped output reads as a timeline.
        nodes.sort_by_key(|n| {
            let c = n.closure.as_ref();
            let t = c.and_then(|c| c.started_at.as_ref().or(c.created_at.as_ref()));
            (
                t.map(|t| (t.seconds, t.nanos)),
                n.id.as_ref().map(|i| i.node_id.clone()),
            )
        });
        match &bar {
            Some(bar) => draw(bar, phase, &nodes, total, colour),
            None if common.output == Format::Table => {
                for n in &nodes {
                    let node_id = n.id.as_ref().map(|i| i.node_id.clone()).unwrap_or_default();
                    let c = n.closure.as_ref();
                    let p = c.map_or(0, |c| c.phase);
                    if seen_nodes.get(&node_id) != Some(&p) {
                        seen_nodes.insert(node_id.clone(), p);
                        let duration = proto_duration(c.and_then(|c| c.duration.as_ref()));
                        if duration.is_empty() || !node_done(p) {
                            outln!("node {node_id} {}", node_phase(p));
                        } else {
                            outln!("node {node_id} {} ({duration})", node_phase(p));
                        }
                    }
                }
                // The final phase is in the summary below.
                if phase != seen_exec_phase && !is_done(phase) {
                    outln!("execution {name} {}", execution_phase(phase));
                    seen_exec_phase = phase;
                }
            }
            None => {}
        }
        if is_done(phase) {
            break;
        }
        tokio::time::sleep(POLL).await;
        exec = client.get_execution(name).await?;
    }
    if let Some(bar) = &bar {
        bar.disable_steady_tick();
        bar.finish();
        // The bar's line has no newline of its own.
        outln!("");
    }
    let phase = exec.closure.as_ref().map_or(0, |c| c.phase);
    if common.output == Format::Table {
        let duration = proto_duration(exec.closure.as_ref().and_then(|c| c.duration.as_ref()));
        let phase_text = phase_styled(execution_phase(phase), colour);
        if duration.is_empty() {
            outln!("execution {name} {phase_text}");
        } else {
            outln!("execution {name} {phase_text} after {duration}");
        }
        if let Some(error) = execution_error(&exec) {
            outln!("error: {error}");
        }
        outln!(
            "console: {}",
            client
                .config
                .execution_url(&client.project, &client.domain, name)
        );
    } else {
        print_data(common.output, &exec)?;
    }
    Ok(ExitCode::from(exit_code(phase)))
}

pub fn exit_code(phase: i32) -> u8 {
    match workflow_execution::Phase::try_from(phase) {
        Ok(workflow_execution::Phase::Succeeded) => exit::OK,
        Ok(workflow_execution::Phase::Aborted) => exit::ABORTED,
        Ok(workflow_execution::Phase::TimedOut) => exit::TIMED_OUT,
        _ => exit::FAILURE,
    }
}

fn is_done(phase: i32) -> bool {
    use workflow_execution::Phase as P;
    matches!(
        P::try_from(phase),
        Ok(P::Succeeded | P::Failed | P::Aborted | P::TimedOut)
    )
}

fn node_done(phase: i32) -> bool {
    use node_execution::Phase as P;
    matches!(
        P::try_from(phase),
        Ok(P::Succeeded | P::Failed | P::Aborted | P::Skipped | P::TimedOut | P::Recovered)
    )
}

/// How many top-level nodes the workflow has (0 if it cannot be told).
async fn planned_nodes(client: &mut Client, exec: &admin::Execution) -> u64 {
    let Some(wf) = exec.closure.as_ref().and_then(|c| c.workflow_id.clone()) else {
        return 0;
    };
    let Ok(wf) = client
        .admin
        .get_workflow(ObjectGetRequest { id: Some(wf) })
        .await
    else {
        return 0;
    };
    wf.into_inner()
        .closure
        .and_then(|c| c.compiled_workflow)
        .and_then(|c| c.primary)
        .and_then(|p| p.template)
        .map_or(0, |t| {
            t.nodes
                .iter()
                .filter(|n| n.id != "start-node" && n.id != "end-node")
                .count() as u64
        })
}

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stdout());
    let style =
        ProgressStyle::with_template("{spinner} {prefix} [{bar:24}] {pos}/{len} nodes  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

fn draw(bar: &ProgressBar, phase: i32, nodes: &[admin::NodeExecution], total: u64, colour: bool) {
    let mut counts: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut running = Vec::new();
    let now = chrono::Utc::now();
    for n in nodes {
        let c = n.closure.as_ref();
        let p = c.map_or(0, |c| c.phase);
        *counts.entry(node_phase(p)).or_default() += 1;
        if !node_done(p) {
            let since = c
                .and_then(|c| c.started_at.as_ref())
                .filter(|t| t.seconds > 0)
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
                .map(|start| {
                    human_duration((now - start).num_milliseconds().max(0) as f64 / 1000.0)
                })
                .unwrap_or_default();
            let id =
                n.id.as_ref()
                    .map(|i| i.node_id.as_str())
                    .unwrap_or_default();
            running.push(format!("{id} {since}").trim_end().to_string());
        }
    }
    let done = nodes
        .iter()
        .filter(|n| node_done(n.closure.as_ref().map_or(0, |c| c.phase)))
        .count() as u64;
    bar.set_length(total.max(nodes.len() as u64));
    bar.set_position(done);
    bar.set_prefix(phase_styled(execution_phase(phase), colour));
    let summary = counts
        .iter()
        .map(|(p, n)| format!("{n} {}", p.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join(", ");
    let msg = if running.is_empty() {
        summary
    } else {
        format!("{summary} | {}", running.join(", "))
    };
    bar.set_message(msg);
}

#[cfg(test)]
mod tests {
    use super::*;
    use workflow_execution::Phase as P;

    #[test]
    fn exit_code_by_outcome() {
        assert_eq!(exit_code(P::Succeeded as i32), 0);
        assert_eq!(exit_code(P::Failed as i32), 1);
        assert_eq!(exit_code(P::Aborted as i32), 3);
        assert_eq!(exit_code(P::TimedOut as i32), 4);
        assert!(is_done(P::Aborted as i32) && !is_done(P::Running as i32));
        assert!(!is_done(P::Failing as i32) && !is_done(P::Aborting as i32));
    }
}
