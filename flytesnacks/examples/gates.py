"""Gate nodes: sleep, wait for a typed input (a signal), and approval of an upstream value."""

from datetime import timedelta

from flytekit import approve, sleep, task, wait_for_input, workflow


@task
def propose(x: int) -> int:
    return x * 10


@task
def apply(value: int, note: str) -> str:
    return f"{note}: {value}"


@workflow
def sleep_wf(x: int = 1) -> int:
    s = sleep(timedelta(seconds=2))
    p = propose(x=x)
    s >> p
    return p


@workflow
def approval_wf(x: int = 1) -> str:
    proposed = propose(x=x)
    approved = approve(proposed, "approve-value", timeout=timedelta(hours=1))
    note = wait_for_input("note", timeout=timedelta(hours=1), expected_type=str)
    return apply(value=approved, note=note)
