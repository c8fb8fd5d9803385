//! Memory of a big `@dynamic` node's event (issue 21 item 3): the admin stores the compiled
//! workflow of a 100,000-node fan-out without another in-memory copy of it. A copy is as big
//! as the compiled workflow itself (hundreds of MB at that size) and came on top of the
//! engine's at the moment every copy was alive, which put a 100,000-node fan-out over 2 GiB.
//!
//! The allocator of this test binary counts live bytes and their peak; the event is built
//! first, then the peak over `node_event` is compared with the size of the compiled workflow.

use std::sync::atomic::Ordering;

use flyte_admin::service::admin::events::node_event;
use flyteidl::admin::DynamicWorkflowNodeMetadata as StoredDynamic;
use flyteidl::core::{
    CompiledWorkflow, CompiledWorkflowClosure, Identifier, Node, NodeExecutionIdentifier,
    NodeMetadata, TaskNode, WorkflowExecutionIdentifier, WorkflowTemplate, node, node_execution,
    task_node,
};
use flyteidl::event::{
    DynamicWorkflowNodeMetadata, NodeExecutionEvent, TaskNodeMetadata, node_execution_event,
};
use prost::Message;

use flyte_test_alloc::{LIVE, PEAK};

#[global_allocator]
static ALLOCATOR: flyte_test_alloc::Counting = flyte_test_alloc::Counting;

/// A compiled workflow of `n` task nodes, as a `@dynamic` fan-out's.
fn compiled(n: usize) -> CompiledWorkflowClosure {
    let task = Identifier {
        resource_type: 1,
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: "flyte_bench.sleep_leaf".into(),
        version: "v1".into(),
        ..Default::default()
    };
    let nodes = (0..n)
        .map(|i| Node {
            id: format!("dn{i}"),
            metadata: Some(NodeMetadata {
                name: "flyte_bench.sleep_leaf".into(),
                ..Default::default()
            }),
            target: Some(node::Target::TaskNode(TaskNode {
                reference: Some(task_node::Reference::ReferenceId(task.clone())),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    CompiledWorkflowClosure {
        primary: Some(CompiledWorkflow {
            template: Some(WorkflowTemplate {
                nodes,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn a_dynamic_nodes_event_is_stored_without_a_copy_of_its_compiled_workflow() {
    let before = LIVE.load(Ordering::Relaxed);
    let closure = compiled(20_000);
    let closure_bytes = LIVE.load(Ordering::Relaxed) - before;
    let event = NodeExecutionEvent {
        id: Some(NodeExecutionIdentifier {
            node_id: "n0".into(),
            execution_id: Some(WorkflowExecutionIdentifier {
                project: "flytesnacks".into(),
                domain: "development".into(),
                name: "big".into(),
                ..Default::default()
            }),
        }),
        phase: node_execution::Phase::DynamicRunning as i32,
        target_metadata: Some(node_execution_event::TargetMetadata::TaskNodeMetadata(
            TaskNodeMetadata {
                dynamic_workflow: Some(Box::new(DynamicWorkflowNodeMetadata {
                    compiled_workflow: Some(closure),
                    dynamic_job_spec_uri: "file:///futures.pb".into(),
                    ..Default::default()
                })),
                ..Default::default()
            },
        )),
        ..Default::default()
    };

    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let record = node_event(None, &event).expect("the event is accepted");
    let extra = PEAK.load(Ordering::Relaxed) - base;

    // What is stored is admin.DynamicWorkflowNodeMetadata with the whole compiled workflow.
    let stored = StoredDynamic::decode(record.dynamic_workflow.as_deref().expect("stored"))
        .expect("decodes as admin.DynamicWorkflowNodeMetadata");
    let TaskNodeMetadata {
        dynamic_workflow: Some(sent),
        ..
    } = (match &event.target_metadata {
        Some(node_execution_event::TargetMetadata::TaskNodeMetadata(t)) => t.clone(),
        _ => unreachable!("built above"),
    })
    else {
        unreachable!("built above")
    };
    assert_eq!(stored.compiled_workflow, sent.compiled_workflow);
    assert_eq!(stored.dynamic_job_spec_uri, "file:///futures.pb");
    // The encoded bytes (and the record around them) only, not a second compiled workflow.
    assert!(
        extra < closure_bytes / 2,
        "storing the event allocated {extra} bytes at its peak; the compiled workflow takes \
         {closure_bytes} bytes in memory"
    );
}
