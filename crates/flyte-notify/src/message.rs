//! What to send for an execution that reached a phase: the notifications it asks for
//! (flyteadmin's choice between the execution's own list, `disable_all` and the launch
//! plan's), and the message with flyteadmin's template parameters filled in.

use flyteidl::admin;
use flyteidl::core;
use prost::Message as _;

/// One destination type of a Flyte notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Email,
    Slack,
    PagerDuty,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Slack => "slack",
            Kind::PagerDuty => "pagerduty",
        }
    }
}

/// One notification that applies to the phase reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub kind: Kind,
    pub recipients: Vec<String>,
    /// The notification's own body template (flyteidl's `template`), if any.
    pub template: String,
}

/// The values of flyteadmin's template parameters for one execution and phase.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Context {
    pub project: String,
    pub domain: String,
    pub name: String,
    /// The `core.WorkflowExecution.Phase` name (`SUCCEEDED`).
    pub phase: String,
    /// The execution's error message, empty if none.
    pub error: String,
    pub console_url: String,
    pub workflow: Option<IdentifierValues>,
    pub launch_plan: Option<IdentifierValues>,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct IdentifierValues {
    pub project: String,
    pub domain: String,
    pub name: String,
    pub version: String,
}

impl From<&core::Identifier> for IdentifierValues {
    fn from(id: &core::Identifier) -> Self {
        Self {
            project: id.project.clone(),
            domain: id.domain.clone(),
            name: id.name.clone(),
            version: id.version.clone(),
        }
    }
}

/// Why a stored record could not be read (logged; the row is retried).
#[derive(Debug, thiserror::Error)]
#[error("cannot decode the stored {what}: {source}")]
pub struct DecodeError {
    what: &'static str,
    source: prost::DecodeError,
}

/// The notifications of an execution, as flyteadmin resolves them at launch: the
/// execution's own list if it has one, none if it says `disable_all`, else the launch
/// plan's.
pub fn resolve(
    execution_spec: &[u8],
    launch_plan_spec: Option<&[u8]>,
) -> Result<Vec<admin::Notification>, DecodeError> {
    use admin::execution_spec::NotificationOverrides;
    let spec = admin::ExecutionSpec::decode(execution_spec).map_err(|source| DecodeError {
        what: "execution spec",
        source,
    })?;
    match spec.notification_overrides {
        Some(NotificationOverrides::Notifications(list)) if !list.notifications.is_empty() => {
            Ok(list.notifications)
        }
        Some(NotificationOverrides::DisableAll(true)) => Ok(Vec::new()),
        _ => match launch_plan_spec {
            None => Ok(Vec::new()),
            Some(bytes) => {
                let lp = admin::LaunchPlanSpec::decode(bytes).map_err(|source| DecodeError {
                    what: "launch plan spec",
                    source,
                })?;
                Ok(lp
                    .entity_metadata
                    .map(|m| m.notifications)
                    .unwrap_or_default())
            }
        },
    }
}

/// The notifications among `all` that ask for `phase` (a `core.WorkflowExecution.Phase` name).
pub fn for_phase(all: &[admin::Notification], phase: &str) -> Vec<Wanted> {
    use admin::notification::Type;
    let Some(phase) = core::workflow_execution::Phase::from_str_name(phase) else {
        return Vec::new();
    };
    all.iter()
        .filter(|n| n.phases.contains(&(phase as i32)))
        .filter_map(|n| {
            let (kind, recipients, template) = match n.r#type.as_ref()? {
                Type::Email(e) => (Kind::Email, &e.recipients_email, &e.template),
                Type::Slack(s) => (Kind::Slack, &s.recipients_email, &s.template),
                Type::PagerDuty(p) => (Kind::PagerDuty, &p.recipients_email, &p.template),
            };
            Some(Wanted {
                kind,
                recipients: recipients.clone(),
                template: template.clone(),
            })
        })
        .collect()
}

/// The execution's error message (`closure.error.message`), empty if none.
pub fn error_message(closure: &[u8]) -> String {
    use admin::execution_closure::OutputResult;
    match admin::ExecutionClosure::decode(closure) {
        Ok(c) => match c.output_result {
            Some(OutputResult::Error(e)) => e.message,
            _ => String::new(),
        },
        Err(_) => String::new(),
    }
}

/// The workflow of an execution (`closure.workflow_id`), if recorded.
pub fn workflow_id(closure: &[u8]) -> Option<core::Identifier> {
    admin::ExecutionClosure::decode(closure)
        .ok()
        .and_then(|c| c.workflow_id)
}

/// Fills flyteadmin's template parameters in `template`: `{{ project }}`, `{{ domain }}`,
/// `{{ name }}`, `{{ phase }}` (lower case, as flyteadmin), `{{ error }}` (" The execution
/// failed with error: [message]." or empty), `{{ workflow.project|domain|name|version }}`,
/// `{{ launch_plan.project|domain|name|version }}`, each also without the spaces
/// (`{{name}}`). Flyte-RS adds `{{ console_url }}`, the execution's page in the console.
pub fn render(template: &str, ctx: &Context) -> String {
    let error = if ctx.error.is_empty() {
        String::new()
    } else {
        format!(" The execution failed with error: [{}].", ctx.error)
    };
    let empty = IdentifierValues::default();
    let wf = ctx.workflow.as_ref().unwrap_or(&empty);
    let lp = ctx.launch_plan.as_ref().unwrap_or(&empty);
    let values: [(&str, &str); 14] = [
        ("project", &ctx.project),
        ("domain", &ctx.domain),
        ("name", &ctx.name),
        ("phase", &ctx.phase.to_ascii_lowercase()),
        ("error", &error),
        ("console_url", &ctx.console_url),
        ("workflow.project", &wf.project),
        ("workflow.domain", &wf.domain),
        ("workflow.name", &wf.name),
        ("workflow.version", &wf.version),
        ("launch_plan.project", &lp.project),
        ("launch_plan.domain", &lp.domain),
        ("launch_plan.name", &lp.name),
        ("launch_plan.version", &lp.version),
    ];
    let mut out = template.to_owned();
    for (key, value) in values {
        out = out
            .replace(&format!("{{{{ {key} }}}}"), value)
            .replace(&format!("{{{{{key}}}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            project: "flytesnacks".into(),
            domain: "development".into(),
            name: "abc123".into(),
            phase: "FAILED".into(),
            error: "boom".into(),
            console_url: "http://localhost:8089/console/projects/flytesnacks/domains/development/executions/abc123".into(),
            workflow: Some(IdentifierValues {
                name: "wf.hello".into(),
                version: "v1".into(),
                ..Default::default()
            }),
            launch_plan: None,
        }
    }

    #[test]
    fn renders_flyteadmin_parameters_with_and_without_spaces() {
        let out = render(
            "Execution \"{{ name }}\" has {{phase}} in \"{{ domain }}\".{{ error }} {{ workflow.name }}@{{workflow.version}} [{{ launch_plan.name }}] {{ unknown }}",
            &ctx(),
        );
        assert_eq!(
            out,
            "Execution \"abc123\" has failed in \"development\". The execution failed with error: [boom]. wf.hello@v1 [] {{ unknown }}"
        );
    }

    #[test]
    fn execution_list_wins_disable_all_silences_else_launch_plan() {
        use admin::execution_spec::NotificationOverrides;
        let email = |to: &str, phase: core::workflow_execution::Phase| admin::Notification {
            phases: vec![phase as i32],
            r#type: Some(admin::notification::Type::Email(admin::EmailNotification {
                recipients_email: vec![to.into()],
                template: String::new(),
            })),
        };
        let lp = admin::LaunchPlanSpec {
            entity_metadata: Some(admin::LaunchPlanMetadata {
                notifications: vec![email("lp@x", core::workflow_execution::Phase::Succeeded)],
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec();
        let spec = |o: Option<NotificationOverrides>| {
            admin::ExecutionSpec {
                notification_overrides: o,
                ..Default::default()
            }
            .encode_to_vec()
        };
        let from_lp = resolve(&spec(None), Some(&lp)).unwrap();
        assert_eq!(for_phase(&from_lp, "SUCCEEDED")[0].recipients, vec!["lp@x"]);
        assert!(for_phase(&from_lp, "FAILED").is_empty());
        let own = resolve(
            &spec(Some(NotificationOverrides::Notifications(
                admin::NotificationList {
                    notifications: vec![email("me@x", core::workflow_execution::Phase::Failed)],
                },
            ))),
            Some(&lp),
        )
        .unwrap();
        assert_eq!(for_phase(&own, "FAILED")[0].recipients, vec!["me@x"]);
        assert!(for_phase(&own, "SUCCEEDED").is_empty());
        let off = resolve(
            &spec(Some(NotificationOverrides::DisableAll(true))),
            Some(&lp),
        )
        .unwrap();
        assert!(off.is_empty());
    }
}
