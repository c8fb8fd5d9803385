"""Failing tasks: recoverable errors retried within the task's budget, a user error that is
not retried, a timeout, and a task that sleeps so it can be terminated."""

import datetime
import os
import time

from flytekit import task, workflow
from flytekit.exceptions.user import FlyteRecoverableException


@task(retries=3)
def flaky(fail_times: int) -> int:
    """Fails recoverably on the first ``fail_times`` attempts; returns the attempt that succeeded."""
    attempt = int(os.environ.get("FLYTE_ATTEMPT_NUMBER", "0"))
    if attempt < fail_times:
        raise FlyteRecoverableException(f"flaky: attempt {attempt} fails on purpose")
    return attempt


@task(retries=2)
def broken(x: int) -> int:
    """A non-recoverable user error: never retried, whatever the budget."""
    if x >= 0:
        raise ValueError(f"broken on purpose with x={x}")
    return x


@task(timeout=datetime.timedelta(seconds=5))
def too_slow(seconds: int) -> int:
    time.sleep(seconds)
    return seconds


@task
def sleepy(seconds: int, pid_file: str) -> int:
    """Writes its pid (for a test to check it is gone after terminate), then sleeps."""
    if pid_file:
        with open(pid_file, "w") as f:
            f.write(str(os.getpid()))
    time.sleep(seconds)
    return seconds


@workflow
def flaky_wf(fail_times: int = 2) -> int:
    return flaky(fail_times=fail_times)


@workflow
def recoverable_exhausted_wf(fail_times: int = 100) -> int:
    """Every attempt fails recoverably: 1 + 3 retries, then the workflow fails."""
    return flaky(fail_times=fail_times)


@workflow
def broken_wf(x: int = 1) -> int:
    return broken(x=x)


@workflow
def timeout_wf(seconds: int = 120) -> int:
    return too_slow(seconds=seconds)


@workflow
def sleepy_wf(seconds: int = 300, pid_file: str = "") -> int:
    return sleepy(seconds=seconds, pid_file=pid_file)
