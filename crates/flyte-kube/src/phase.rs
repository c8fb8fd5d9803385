//! A pod's status as the attempt's progress, decided as flytepropeller decides it
//! (flyteplugins `plugins/k8s/pod/plugin.go` `DemystifyPodStatus`, and `flytek8s/pod_helper.go`
//! `DemystifyPending`, `classifyWaitingContainer`, `DemystifySuccess`,
//! `DeterminePrimaryContainerPhase`, `DemystifyFailure`). Pure: the clock is an argument.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;

/// Propeller's `OOMKilled` reason.
pub const OOM_KILLED: &str = "OOMKilled";
/// Propeller's code for a pod taken away by the platform (`pluginsCore.Interrupted`).
pub const INTERRUPTED: &str = "Interrupted";
/// Pod reasons of nodes shut down under the pod (`retryableStatusReasons`).
const RETRYABLE_STATUS_REASONS: [&str; 4] =
    ["Shutdown", "Terminated", "NodeShutdown", "NodeAffinity"];
const SIGKILL: i32 = 137;
const UNSIGNED_SIGKILL: i32 = 247;

/// Grace periods of waiting states that may clear by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace {
    pub image_pull_backoff: Duration,
    pub create_container_config_error: Duration,
    pub create_container_error: Duration,
    /// How long a pod may stay pending (unschedulable, pulling, creating) before the attempt
    /// fails with `PodPendingTimeout` (propeller `pod-pending-timeout`); zero: forever.
    pub pod_pending: Duration,
}

/// Who a failure is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// Counts against the task's retries (propeller `PhaseInfoRetryableFailure` and
    /// `PhaseInfoFailure`: kind USER).
    User,
    /// A platform failure: counts against the system retry budget.
    System,
}

/// What the pod says about its attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodPhase {
    /// Not running yet: scheduling, pulling the image, initializing (propeller's QUEUED and
    /// INITIALIZING), with the reason shown to the user.
    Queued {
        reason: String,
    },
    Running,
    /// `PodUnknown` (the node stopped reporting): propeller changes nothing.
    Unknown,
    /// The primary container ended with 0 (outputs are then read from the store).
    Succeeded,
    Failed {
        code: String,
        message: String,
        blame: Blame,
        retryable: bool,
    },
}

impl PodPhase {
    fn failed(
        code: impl Into<String>,
        message: impl Into<String>,
        blame: Blame,
        retryable: bool,
    ) -> Self {
        PodPhase::Failed {
            code: code.into(),
            message: message.into(),
            blame,
            retryable,
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed { .. })
    }
}

/// The primary container of a pod we built (our annotation, else kubectl's default container,
/// else the first container: `GetPrimaryContainerName`).
pub fn primary_container(pod: &Pod) -> String {
    let annotations = pod.metadata.annotations.as_ref();
    for key in [
        crate::pod::PRIMARY_CONTAINER_ANNOTATION,
        "kubectl.kubernetes.io/default-container",
        crate::pod::PRIMARY_CONTAINER_KEY,
    ] {
        if let Some(v) = annotations
            .and_then(|a| a.get(key))
            .filter(|v| !v.is_empty())
        {
            return v.clone();
        }
    }
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_default()
}

/// `DemystifyPodStatus`.
pub fn classify(pod: &Pod, grace: &Grace, now: Timestamp) -> PodPhase {
    let primary = primary_container(pod);
    let default = PodStatus::default();
    let status = pod.status.as_ref().unwrap_or(&default);
    match status.phase.as_deref().unwrap_or("Pending") {
        "Succeeded" => demystify_success(status),
        "Failed" => demystify_failure(status, &primary),
        "Pending" => pending_with_timeout(status, grace, now),
        "Unknown" => PodPhase::Unknown,
        // Running: the primary container decides (a sidecar may keep running).
        _ => primary_container_phase(
            &primary,
            status.container_statuses.as_deref().unwrap_or(&[]),
        ),
    }
}

fn all_statuses(status: &PodStatus) -> impl Iterator<Item = &ContainerStatus> {
    status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .chain(status.ephemeral_container_statuses.iter().flatten())
}

fn demystify_success(status: &PodStatus) -> PodPhase {
    for c in all_statuses(status) {
        if let Some(t) = c.state.as_ref().and_then(|s| s.terminated.as_ref())
            && t.reason.as_deref().unwrap_or("").contains(OOM_KILLED)
        {
            return PodPhase::failed(
                OOM_KILLED,
                "Pod reported success despite being OOMKilled",
                Blame::User,
                true,
            );
        }
    }
    PodPhase::Succeeded
}

fn sigkilled(state: &ContainerState) -> bool {
    state
        .terminated
        .as_ref()
        .is_some_and(|t| t.exit_code == SIGKILL || t.exit_code == UNSIGNED_SIGKILL)
}

fn primary_container_phase(primary: &str, statuses: &[ContainerStatus]) -> PodPhase {
    let Some(s) = statuses.iter().find(|s| s.name == primary) else {
        // Running without statuses yet: the kubelet has not reported; keep it running.
        if statuses.is_empty() {
            return PodPhase::Running;
        }
        return PodPhase::failed(
            "PrimaryContainerNotFound",
            format!("Primary container [{primary}] not found in pod's container statuses"),
            Blame::User,
            false,
        );
    };
    let default = ContainerState::default();
    let state = s.state.as_ref().unwrap_or(&default);
    let Some(t) = &state.terminated else {
        return PodPhase::Running;
    };
    let reason = t.reason.clone().unwrap_or_default();
    let message = format!(
        "\r\n[{}] terminated with exit code ({}). Reason [{}]. Message: \n{}.",
        s.name,
        t.exit_code,
        reason,
        t.message.as_deref().unwrap_or("")
    );
    if reason.contains(OOM_KILLED) {
        PodPhase::failed(reason, message, Blame::User, true)
    } else if sigkilled(state) {
        PodPhase::failed(reason, message, Blame::System, true)
    } else if t.exit_code != 0 {
        PodPhase::failed(reason, message, Blame::User, true)
    } else {
        PodPhase::Succeeded
    }
}

fn demystify_failure(status: &PodStatus, primary: &str) -> PodPhase {
    let mut code = status
        .reason
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "UnknownError".into());
    let mut message = status
        .message
        .clone()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "Pod failed. No message received from kubernetes.".into());
    let mut system = RETRYABLE_STATUS_REASONS.contains(&code.as_str());
    for c in all_statuses(status) {
        let state = match (&c.last_state, &c.state) {
            (Some(last), _) if last.terminated.is_some() => last,
            (_, Some(now)) if now.terminated.is_some() => now,
            _ => continue,
        };
        let Some(t) = &state.terminated else { continue };
        if t.reason.as_deref().unwrap_or("").contains(OOM_KILLED) {
            code = OOM_KILLED.into();
        } else if sigkilled(state) {
            code = INTERRUPTED.into();
            if c.name == primary {
                system = true;
            }
        }
        if t.exit_code == 0 {
            message.push_str(&format!("\r\n[{}] terminated with ExitCode 0.", c.name));
        } else {
            message.push_str(&format!(
                "\r\n[{}] terminated with exit code ({}). Reason [{}]. Message: \n{}.",
                c.name,
                t.exit_code,
                t.reason.as_deref().unwrap_or(""),
                t.message.as_deref().unwrap_or("")
            ));
        }
    }
    if code == "UnknownError" {
        system = true;
    }
    if system {
        PodPhase::failed(INTERRUPTED, message, Blame::System, true)
    } else {
        PodPhase::failed(code, message, Blame::User, true)
    }
}

/// `DemystifyPending`: a pod still pending after `grace.pod_pending` (from its pending
/// condition's last transition) is a retryable USER failure `PodPendingTimeout` with the
/// reason it was waiting for; the backend then deletes it, so that it does not start later.
fn pending_with_timeout(status: &PodStatus, grace: &Grace, now: Timestamp) -> PodPhase {
    let (phase, since) = demystify_pending(status, grace, now);
    if let (PodPhase::Queued { reason }, Some(since)) = (&phase, since)
        && !grace.pod_pending.is_zero()
        && Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO)
            >= grace.pod_pending
    {
        return PodPhase::failed(POD_PENDING_TIMEOUT, reason.clone(), Blame::User, true);
    }
    phase
}

/// The code of a pod that stayed pending too long.
pub const POD_PENDING_TIMEOUT: &str = "PodPendingTimeout";

/// The phase, and since when the condition that decided it holds.
fn demystify_pending(
    status: &PodStatus,
    grace: &Grace,
    now: Timestamp,
) -> (PodPhase, Option<Timestamp>) {
    for c in status.conditions.iter().flatten() {
        let since = c.last_transition_time.as_ref().map(|t| t.0);
        let reason = c.reason.as_deref().unwrap_or("");
        let message = c.message.as_deref().unwrap_or("");
        match c.type_.as_str() {
            "PodScheduled" if c.status == "False" => {
                let phase = PodPhase::Queued {
                    reason: format!("{reason}:{message}"),
                };
                return (phase, since);
            }
            "Unschedulable" => {
                let phase = PodPhase::Queued {
                    reason: format!("{reason}:{message}"),
                };
                return (phase, since);
            }
            "Ready" if c.status == "False" => {
                // Init containers first: a stuck one is the cause when the main containers
                // only say PodInitializing.
                let waiting = status
                    .init_container_statuses
                    .iter()
                    .flatten()
                    .find_map(|s| s.state.as_ref().and_then(|st| st.waiting.as_ref()))
                    .or_else(|| {
                        status
                            .container_statuses
                            .iter()
                            .flatten()
                            .filter(|s| !s.ready)
                            .find_map(|s| s.state.as_ref().and_then(|st| st.waiting.as_ref()))
                    });
                if let Some(w) = waiting {
                    let elapsed = since
                        .map(|t| {
                            Duration::try_from(now.duration_since(t)).unwrap_or(Duration::ZERO)
                        })
                        .unwrap_or(Duration::ZERO);
                    let phase = classify_waiting(
                        w.reason.as_deref().unwrap_or(""),
                        w.message.as_deref().unwrap_or(""),
                        reason,
                        message,
                        elapsed,
                        grace,
                    );
                    return (phase, since);
                }
            }
            _ => {}
        }
    }
    let phase = PodPhase::Queued {
        reason: "Scheduling".into(),
    };
    (phase, None)
}

/// `classifyWaitingContainer`.
fn classify_waiting(
    waiting_reason: &str,
    waiting_message: &str,
    condition_reason: &str,
    condition_message: &str,
    elapsed: Duration,
    grace: &Grace,
) -> PodPhase {
    let final_reason = format!("{condition_reason}|{waiting_reason}");
    let final_message = format!("{condition_message}|{waiting_message}");
    let initializing = || PodPhase::Queued {
        reason: format!("[{final_reason}]: {final_message}"),
    };
    let after_grace =
        |g: Duration| format!("Grace period [{}] exceeded|{final_message}", go_duration(g));
    match waiting_reason {
        "ErrImagePull" | "ContainerCreating" | "PodInitializing" => initializing(),
        "CreateContainerError" if elapsed >= grace.create_container_error => PodPhase::failed(
            final_reason.clone(),
            after_grace(grace.create_container_error),
            Blame::User,
            false,
        ),
        "CreateContainerConfigError" if elapsed >= grace.create_container_config_error => {
            PodPhase::failed(
                final_reason.clone(),
                after_grace(grace.create_container_config_error),
                Blame::User,
                false,
            )
        }
        "CreateContainerError" | "CreateContainerConfigError" => initializing(),
        "InvalidImageName" => PodPhase::failed(
            final_reason.clone(),
            final_message.clone(),
            Blame::User,
            false,
        ),
        "ImagePullBackOff" if elapsed >= grace.image_pull_backoff => {
            // A registry's rate limit is the platform's trouble, not the user's.
            let blame = if waiting_message.contains("429 Too Many Requests") {
                Blame::System
            } else {
                Blame::User
            };
            PodPhase::failed(
                final_reason.clone(),
                after_grace(grace.image_pull_backoff),
                blame,
                true,
            )
        }
        "ImagePullBackOff" => initializing(),
        _ => PodPhase::failed(
            final_reason.clone(),
            final_message.clone(),
            Blame::System,
            true,
        ),
    }
}

/// Go's `time.Duration.String()` for whole seconds and minutes (`3m0s`, `45s`).
fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, m, sec) => format!("{h}h{m}m{sec}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const GRACE: Grace = Grace {
        image_pull_backoff: Duration::from_secs(180),
        create_container_config_error: Duration::from_secs(180),
        create_container_error: Duration::from_secs(180),
        pod_pending: Duration::ZERO,
    };

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "e-n0-0", "namespace": "p-d",
                         "annotations": {"flyte-rs/primary-container": "main"}},
            "spec": {"containers": [{"name": "main", "image": "i"}, {"name": "side", "image": "j"}]},
            "status": status,
        }))
        .unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A pending pod whose `main` container waits with `reason` since 12:00:00.
    fn waiting(reason: &str, message: &str) -> Pod {
        pod(json!({"phase": "Pending",
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                            "message": "containers with unready status: [main]",
                            "lastTransitionTime": "2026-12-07T12:00:00Z"}],
            "containerStatuses": [{"name": "main", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                                   "state": {"waiting": {"reason": reason, "message": message}}}]}))
    }

    fn failed(p: &PodPhase) -> (&str, Blame, bool) {
        match p {
            PodPhase::Failed {
                code,
                blame,
                retryable,
                ..
            } => (code.as_str(), *blame, *retryable),
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn a_pod_pending_past_the_timeout_fails_retryable_with_its_reason() {
        let grace = Grace {
            pod_pending: Duration::from_secs(600),
            ..GRACE
        };
        let unschedulable = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu",
            "lastTransitionTime": "2026-12-07T12:00:00Z"}]}),
        );
        // Within the timeout (and with none configured): QUEUED with the scheduler's message.
        for (g, now) in [
            (grace, at("2026-12-07T12:09:59Z")),
            (GRACE, at("2026-12-08T12:00:00Z")),
        ] {
            assert_eq!(
                classify(&unschedulable, &g, now),
                PodPhase::Queued {
                    reason: "Unschedulable:0/3 nodes are available: 3 Insufficient nvidia.com/gpu"
                        .into()
                }
            );
        }
        let p = classify(&unschedulable, &grace, at("2026-12-07T12:10:00Z"));
        assert_eq!(
            p,
            PodPhase::Failed {
                code: "PodPendingTimeout".into(),
                message: "Unschedulable:0/3 nodes are available: 3 Insufficient nvidia.com/gpu"
                    .into(),
                blame: Blame::User,
                retryable: true,
            }
        );
        // No condition to date it: it waits (propeller dates it now).
        assert!(matches!(
            classify(
                &pod(json!({"phase": "Pending"})),
                &grace,
                at("2027-01-01T00:00:00Z")
            ),
            PodPhase::Queued { .. }
        ));
    }

    #[test]
    fn pending_pods_are_queued_with_the_reason() {
        let now = at("2026-12-07T12:00:10Z");
        assert_eq!(
            classify(&pod(json!({"phase": "Pending"})), &GRACE, now),
            PodPhase::Queued {
                reason: "Scheduling".into()
            }
        );
        let unschedulable = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]}),
        );
        assert_eq!(
            classify(&unschedulable, &GRACE, now),
            PodPhase::Queued {
                reason: "Unschedulable:0/3 nodes are available".into()
            }
        );
        for reason in ["ContainerCreating", "ErrImagePull", "PodInitializing"] {
            let p = classify(&waiting(reason, "m"), &GRACE, now);
            assert!(
                matches!(&p, PodPhase::Queued { reason: r } if r.contains(reason)),
                "{p:?}"
            );
        }
    }

    #[test]
    fn waiting_errors_fail_after_their_grace_period_only() {
        let within = at("2026-12-07T12:02:59Z");
        let after = at("2026-12-07T12:03:00Z");
        let pull = waiting("ImagePullBackOff", "Back-off pulling image \"nope\"");
        assert!(matches!(
            classify(&pull, &GRACE, within),
            PodPhase::Queued { .. }
        ));
        assert_eq!(
            failed(&classify(&pull, &GRACE, after)),
            ("ContainersNotReady|ImagePullBackOff", Blame::User, true)
        );
        let limited = waiting("ImagePullBackOff", "429 Too Many Requests");
        assert_eq!(failed(&classify(&limited, &GRACE, after)).1, Blame::System);
        let secret = waiting("CreateContainerConfigError", "secret \"db\" not found");
        assert!(matches!(
            classify(&secret, &GRACE, within),
            PodPhase::Queued { .. }
        ));
        assert_eq!(
            failed(&classify(&secret, &GRACE, after)),
            (
                "ContainersNotReady|CreateContainerConfigError",
                Blame::User,
                false
            )
        );
        // No grace for a name that can never be pulled; an unknown wait is a system failure.
        let bad = waiting("InvalidImageName", "m");
        assert!(!failed(&classify(&bad, &GRACE, within)).2);
        let odd = waiting("RunContainerError", "m");
        assert_eq!(failed(&classify(&odd, &GRACE, within)).1, Blame::System);
    }

    fn terminated(phase: &str, reason: Option<&str>, exit: i32, creason: &str) -> Pod {
        let mut status = json!({"phase": phase,
            "containerStatuses": [{"name": "main", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                "state": {"terminated": {"exitCode": exit, "reason": creason}}}]});
        if let Some(r) = reason {
            status["reason"] = json!(r);
            status["message"] = json!("The node was low on resource: memory.");
        }
        pod(status)
    }

    #[test]
    fn failures_are_classified_as_propeller_classifies_them() {
        let now = at("2026-12-07T12:00:10Z");
        // Exit code 1 with no pod reason (and no error.pb, which the backend reads first):
        // propeller's code stays UnknownError, which it counts as a system error.
        let p = classify(&terminated("Failed", None, 1, "Error"), &GRACE, now);
        assert_eq!(failed(&p), (INTERRUPTED, Blame::System, true));
        assert!(
            matches!(&p, PodPhase::Failed { message, .. } if message.contains("[main] terminated with exit code (1)"))
        );
        // OOMKilled: propeller charges it to the user, retryable.
        assert_eq!(
            failed(&classify(
                &terminated("Failed", None, 137, "OOMKilled"),
                &GRACE,
                now
            )),
            (OOM_KILLED, Blame::User, true)
        );
        // SIGKILL of the primary (node gone, preempted): a system error.
        assert_eq!(
            failed(&classify(
                &terminated("Failed", None, 137, "Error"),
                &GRACE,
                now
            )),
            (INTERRUPTED, Blame::System, true)
        );
        // Evicted: the pod's reason is the code, a user-retryable failure.
        assert_eq!(
            failed(&classify(
                &terminated("Failed", Some("Evicted"), 1, "Error"),
                &GRACE,
                now
            )),
            ("Evicted", Blame::User, true)
        );
        // Node shutdown: system.
        assert_eq!(
            failed(&classify(
                &terminated("Failed", Some("Shutdown"), 1, "Error"),
                &GRACE,
                now
            )),
            (INTERRUPTED, Blame::System, true)
        );
        // Failed with nothing recorded: system.
        assert_eq!(
            failed(&classify(&pod(json!({"phase": "Failed"})), &GRACE, now)).1,
            Blame::System
        );
        // "Succeeded" with an OOMKilled container is not a success.
        assert_eq!(
            failed(&classify(
                &terminated("Succeeded", None, 0, "OOMKilled"),
                &GRACE,
                now
            ))
            .0,
            OOM_KILLED
        );
        assert_eq!(
            classify(&terminated("Succeeded", None, 0, "Completed"), &GRACE, now),
            PodPhase::Succeeded
        );
    }

    #[test]
    fn a_running_pod_follows_its_primary_container() {
        let now = at("2026-12-07T12:00:10Z");
        let side_done = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "side", "ready": false, "restartCount": 0, "image": "j", "imageID": "",
             "state": {"terminated": {"exitCode": 0}}},
            {"name": "main", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"running": {}}}]}));
        assert_eq!(classify(&side_done, &GRACE, now), PodPhase::Running);
        // The primary done while a sidecar still runs: the task is done.
        let main_done = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "main", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"terminated": {"exitCode": 0}}},
            {"name": "side", "ready": true, "restartCount": 0, "image": "j", "imageID": "",
             "state": {"running": {}}}]}));
        assert_eq!(classify(&main_done, &GRACE, now), PodPhase::Succeeded);
    }
}
