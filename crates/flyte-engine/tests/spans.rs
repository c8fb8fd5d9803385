//! Tracing: every node runs inside a `node` span nested under its parent node's span (or the
//! execution's), and what a backend logs while starting an attempt carries the execution's
//! project, domain and name and the node's id.

mod engine_support;
use engine_support::*;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use flyte_blob::BlobStore;
use flyte_core::compiler::{Resolved, compile_workflow_template};
use flyte_core::ids::IdKey;
use flyte_engine::backend::{
    AttemptKey, AttemptOutcome, AttemptUpdate, BackendError, TaskAttempt, TaskBackend,
};
use flyte_engine::{Engine, MemorySink, WorkflowPhase};
use flyteidl::core::*;
use prost::Message;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

// ------------------------------------------------------------------ a recording layer

#[derive(Debug, Clone)]
struct SpanRec {
    name: &'static str,
    fields: BTreeMap<String, String>,
    parent: Option<usize>,
    closed: bool,
}

#[derive(Debug, Clone)]
struct EventRec {
    message: String,
    /// Fields of every span the event is inside, outermost first, by span name.
    scope: Vec<(&'static str, BTreeMap<String, String>)>,
}

#[derive(Default, Clone)]
struct Recorded {
    spans: Arc<Mutex<Vec<SpanRec>>>,
    events: Arc<Mutex<Vec<EventRec>>>,
}

/// The index of a span's record, kept in the span's extensions (ids are reused).
struct RecIndex(usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);
impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            format!("{value:?}").trim_matches('"').to_string(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Recorded {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let span = ctx.span(id).unwrap();
        let parent = span
            .parent()
            .and_then(|p| p.extensions().get::<RecIndex>().map(|r| r.0));
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(SpanRec {
            name: attrs.metadata().name(),
            fields,
            parent,
            closed: false,
        });
        span.extensions_mut().insert(RecIndex(spans.len() - 1));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let span = ctx.span(id).unwrap();
        let ext = span.extensions();
        let i = ext.get::<RecIndex>().unwrap().0;
        values.record(&mut Fields(&mut self.spans.lock().unwrap()[i].fields));
    }
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let span = ctx.span(&id).unwrap();
        let i = span.extensions().get::<RecIndex>().unwrap().0;
        self.spans.lock().unwrap()[i].closed = true;
    }
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let spans = self.spans.lock().unwrap();
        let scope = ctx
            .event_scope(event)
            .map(|s| {
                s.from_root()
                    .filter_map(|span| {
                        let i = span.extensions().get::<RecIndex>()?.0;
                        Some((spans[i].name, spans[i].fields.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.events.lock().unwrap().push(EventRec {
            message: fields.remove("message").unwrap_or_default(),
            scope,
        });
    }
}

// ------------------------------------------------------------------ a backend that logs

struct LoggingBackend {
    blob: BlobStore,
}

#[async_trait]
impl TaskBackend for LoggingBackend {
    fn name(&self) -> &'static str {
        "logging"
    }
    fn handles(&self, t: &TaskTemplate) -> bool {
        t.r#type == "logging"
    }
    async fn start(
        &self,
        attempt: TaskAttempt,
        updates: mpsc::UnboundedSender<(AttemptKey, AttemptUpdate)>,
    ) -> Result<(), BackendError> {
        tracing::info!("attempt accepted by the backend");
        let out = self
            .blob
            .path_from_native_url(&format!("{}/outputs.pb", attempt.paths.output_prefix))
            .unwrap();
        let outputs = LiteralMap {
            literals: BTreeMap::from([("o0".to_string(), int_lit(1))]),
        };
        self.blob
            .put(&out, Bytes::from(outputs.encode_to_vec()))
            .await
            .unwrap();
        let _ = updates.send((
            attempt.key,
            AttemptUpdate::Finished(AttemptOutcome::Succeeded { logs: vec![] }),
        ));
        Ok(())
    }
    async fn abort(&self, _key: &AttemptKey) {}
}

fn task_node(id: &str, task: &str) -> Node {
    Node {
        id: id.into(),
        target: Some(node::Target::TaskNode(TaskNode {
            reference: Some(task_node::Reference::ReferenceId(ident(
                ResourceType::Task,
                task,
            ))),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn output_of(node: &str) -> Binding {
    Binding {
        var: "o".into(),
        binding: Some(BindingData {
            value: Some(binding_data::Value::Promise(OutputReference {
                node_id: node.into(),
                var: "o0".into(),
                ..Default::default()
            })),
            ..Default::default()
        }),
    }
}

fn workflow(name: &str, nodes: Vec<Node>, output: Binding) -> WorkflowTemplate {
    WorkflowTemplate {
        id: Some(ident(ResourceType::Workflow, name)),
        interface: Some(iface(&[], &[("o", int_t())])),
        nodes,
        outputs: vec![output],
        ..Default::default()
    }
}

#[tokio::test]
async fn nodes_and_attempts_run_inside_spans_carrying_their_ids() {
    let recorded = Recorded::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(recorded.clone()));

    let dir = tempfile::tempdir().unwrap();
    let blob = BlobStore::from_url(dir.path().to_str().unwrap()).unwrap();
    let sink = MemorySink::new();
    let engine = Engine::new(engine_support::deps(
        &blob,
        vec![Arc::new(LoggingBackend { blob: blob.clone() })],
        &sink,
    ));

    let task = TaskTemplate {
        id: Some(ident(ResourceType::Task, "t")),
        r#type: "logging".into(),
        interface: Some(iface(&[], &[("o0", int_t())])),
        ..Default::default()
    };
    let sub = workflow("sub", vec![task_node("inner", "t")], output_of("inner"));
    let outer_node = Node {
        id: "s".into(),
        target: Some(node::Target::WorkflowNode(WorkflowNode {
            reference: Some(workflow_node::Reference::SubWorkflowRef(ident(
                ResourceType::Workflow,
                "sub",
            ))),
        })),
        ..Default::default()
    };
    let top = workflow("top", vec![outer_node], {
        let mut b = output_of("s");
        if let Some(binding_data::Value::Promise(p)) =
            b.binding.as_mut().and_then(|d| d.value.as_mut())
        {
            p.var = "o".into();
        }
        b
    });
    let mut resolved = Resolved::default();
    resolved
        .tasks
        .insert(IdKey::from(&ident(ResourceType::Task, "t")), task);
    let compiled = compile_workflow_template(&top, &[sub], &resolved).unwrap();

    let req = request("spans1", compiled, &[]);
    let id = req.id.clone();
    engine.start_execution(req).await.unwrap();
    let phase = tokio::time::timeout(Duration::from_secs(20), engine.wait(&id))
        .await
        .expect("execution did not finish");
    assert_eq!(phase, Some(WorkflowPhase::Succeeded));

    let spans = recorded.spans.lock().unwrap().clone();
    let find = |name: &str, field: &str, value: &str| {
        spans
            .iter()
            .position(|s| s.name == name && s.fields.get(field).map(String::as_str) == Some(value))
            .unwrap_or_else(|| panic!("no {name} span with {field}={value} in {spans:#?}"))
    };
    let execution = find("execution", "execution", "spans1");
    assert_eq!(spans[execution].fields["project"], "p");
    assert_eq!(spans[execution].fields["domain"], "d");
    let outer = find("node", "node", "s");
    let inner = find("node", "node", "s-0-inner");
    assert_eq!(
        spans[outer].parent,
        Some(execution),
        "a top-level node's span is the execution's child"
    );
    assert_eq!(
        spans[inner].parent,
        Some(outer),
        "a nested node's span is its parent node's child"
    );
    for i in [outer, inner] {
        assert!(
            spans[i].closed,
            "the span of a finished node is closed: {:?}",
            spans[i]
        );
        assert_eq!(
            spans[i].fields.get("phase").map(String::as_str),
            Some("Succeeded")
        );
    }

    let events = recorded.events.lock().unwrap().clone();
    let accepted = events
        .iter()
        .find(|e| e.message == "attempt accepted by the backend")
        .expect("the backend's log line was recorded");
    let names: Vec<_> = accepted.scope.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["execution", "node", "node"], "{accepted:?}");
    assert_eq!(accepted.scope[0].1["project"], "p");
    assert_eq!(accepted.scope[0].1["execution"], "spans1");
    assert_eq!(accepted.scope[2].1["node"], "s-0-inner");
}
