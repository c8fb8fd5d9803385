"""Notifications, as Flyte's notifications guide writes them: a launch plan that emails on
success and failure and posts to Slack on failure. Flyte-RS sends them through the server's
`notifications` settings (docs/notifications.md): SMTP for email, a Slack incoming webhook
for Slack (or email to the channel's address without one)."""

from flytekit import Email, LaunchPlan, Slack, WorkflowExecutionPhase, task, workflow


@task
def greet(name: str, fail: bool) -> str:
    if fail:
        raise ValueError(f"asked to fail for {name}")
    return f"hello {name}"


@workflow
def notify_wf(name: str = "world", fail: bool = False) -> str:
    return greet(name=name, fail=fail)


notify_lp = LaunchPlan.get_or_create(
    name="notify_lp",
    workflow=notify_wf,
    notifications=[
        Email(
            phases=[WorkflowExecutionPhase.SUCCEEDED, WorkflowExecutionPhase.FAILED],
            recipients_email=["flyte-team@example.com"],
        ),
        Slack(
            phases=[WorkflowExecutionPhase.FAILED],
            recipients_email=["ops-channel@example.slack.com"],
        ),
    ],
)
