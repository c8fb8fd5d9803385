"""The chaos test's workload: Python chains, a map task, a @dynamic fan-out of in-engine leaves,
a cached `cache_serialize` task, an approval gate and a failing task.

Every Python task body appends a `start` line when it begins and an `end` line when it is done
to `<log_dir>/runs.jsonl` (`log_dir` is an input; the cache key ignores it). A line names the
attempt the engine ran: execution, node and attempt from the attempt's working directory
(`<data>/work/<project>/<domain>/<execution>/<node>/<attempt>`), so the test can tell a
re-run of an abandoned attempt from a re-run of one that had succeeded.
"""

import datetime
import functools
import json
import os
import time
import typing

from flytekit import approve, dynamic, map_task, task, workflow
from flytekit.core.task import Echo
from flytekitplugins.sleep import Sleep

# The attempt's working directory, as the engine created it (read before anything may chdir).
_CWD = os.getcwd()


def _record(log_dir: str, event: str, task_name: str, **extra) -> None:
    parts = _CWD.rstrip("/").split("/")
    line = {
        "event": event,
        "task": task_name,
        "execution": os.environ.get("FLYTE_INTERNAL_EXECUTION_ID", ""),
        "attempt": os.environ.get("FLYTE_ATTEMPT_NUMBER", ""),
        "dir_execution": parts[-3] if len(parts) >= 3 else "",
        "dir_node": parts[-2] if len(parts) >= 2 else "",
        "dir_attempt": parts[-1] if parts else "",
        "pid": os.getpid(),
        "t": time.time(),
        **extra,
    }
    # One short O_APPEND write per line: lines of concurrent bodies do not interleave.
    fd = os.open(os.path.join(log_dir, "runs.jsonl"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def _body(log_dir: str, task_name: str, seconds: float, **extra) -> None:
    _record(log_dir, "start", task_name, **extra)
    if seconds > 0:
        time.sleep(seconds)
    _record(log_dir, "end", task_name, **extra)


@task
def step(x: int, i: int, delay: float, log_dir: str) -> int:
    _body(log_dir, "step", delay, i=i)
    return x + i


@workflow
def chain_wf(x: int, delay: float, log_dir: str) -> int:
    """Five Python steps in series: x + 1 + 2 + 3 + 4 + 5."""
    v = x
    for i in range(1, 6):
        v = step(x=v, i=i, delay=delay, log_dir=log_dir)
    return v


@task
def square(x: int, log_dir: str) -> int:
    _body(log_dir, "square", 0.5, x=x)
    return x * x


@workflow
def map_wf(xs: typing.List[int], log_dir: str) -> typing.List[int]:
    return map_task(functools.partial(square, log_dir=log_dir), concurrency=2)(x=xs)


@task(task_config=Sleep())
def sleep_leaf(duration: datetime.timedelta) -> None:
    """core-sleep: the engine sleeps, no process."""


echo_leaf = Echo(name="chaos_workflows.chaos.echo_leaf", inputs={"a": int})


@dynamic
def fan_out(n: int, seconds: int, log_dir: str) -> typing.List[int]:
    """`n` core-sleep leaves and `n` echo leaves (in the engine); returns the echoes 0..n-1."""
    _body(log_dir, "fan_out", 0.0, n=n)
    duration = datetime.timedelta(seconds=seconds)
    echoes = []
    for i in range(n):
        s = sleep_leaf(duration=duration)
        e = echo_leaf(a=i)
        s >> e
        echoes.append(e)
    return echoes


@workflow
def fan_out_wf(n: int, seconds: int, log_dir: str) -> typing.List[int]:
    return fan_out(n=n, seconds=seconds, log_dir=log_dir)


@task(cache=True, cache_serialize=True, cache_version="1", cache_ignore_input_vars=("log_dir",))
def serialized(x: int, log_dir: str) -> int:
    """Cached and serialized: executions with the same `x` share one body run at a time."""
    _body(log_dir, "serialized", 2.0, x=x)
    return x * x


@workflow
def serialized_wf(x: int, log_dir: str) -> int:
    return serialized(x=x, log_dir=log_dir)


@task
def propose(x: int, log_dir: str) -> int:
    _body(log_dir, "propose", 0.0)
    return x * 10


@task
def finish(v: int, log_dir: str) -> int:
    _body(log_dir, "finish", 0.0)
    return v + 1


@workflow
def gate_wf(x: int, log_dir: str) -> int:
    """x * 10, approved by the test while the chaos runs, plus one."""
    proposed = propose(x=x, log_dir=log_dir)
    approved = approve(proposed, "chaos-approve", timeout=datetime.timedelta(hours=1))
    return finish(v=approved, log_dir=log_dir)


@task
def boom(x: int, log_dir: str) -> int:
    _body(log_dir, "boom", 0.0)
    if x >= 0:
        raise ValueError(f"chaos boom {x}")
    return x


@workflow
def fail_wf(x: int, log_dir: str) -> int:
    return boom(x=x, log_dir=log_dir)
