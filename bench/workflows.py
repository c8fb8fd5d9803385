"""The benchmark shapes, as flyteorg/flyte-benchmarks builds them for Flyte v1 (scripts/v1/):
core-sleep leaves (flytekitplugins-sleep: the engine sleeps, no process) emitted by one
@dynamic task, in parallel (fan-out) or chained with `prev >> cur` (long chain); the default
sleep is 0 s, as there. Plus a chain of Python no-op tasks for the per-task overhead.

bench/run.py copies this file into a throw-away project directory and runs it with
`pyflyte run --remote`.
"""

from datetime import timedelta

from flytekit import dynamic, map_task, task, workflow
from flytekitplugins.sleep import Sleep


@task(task_config=Sleep())
def sleep_leaf(duration: timedelta) -> None:
    """core-sleep: the engine sleeps, no process, no output."""


@dynamic
def leaves(n: int, seconds: int) -> int:
    """`n` parallel core-sleep leaves inside one dynamic sub-workflow."""
    duration = timedelta(seconds=seconds)
    for _ in range(n):
        sleep_leaf(duration=duration)
    return n


@dynamic
def chained_leaves(length: int, seconds: int) -> int:
    """`length` core-sleep leaves in series (`prev >> cur`)."""
    duration = timedelta(seconds=seconds)
    prev = None
    for _ in range(length):
        cur = sleep_leaf(duration=duration)
        if prev is not None:
            prev >> cur
        prev = cur
    return length


@workflow
def fanout_wf(n: int = 1000, seconds: int = 0) -> int:
    return leaves(n=n, seconds=seconds)


@workflow
def chain_wf(length: int = 100, seconds: int = 0) -> int:
    return chained_leaves(length=length, seconds=seconds)


@task
def noop(x: int) -> int:
    return x + 1


@workflow
def python_chain_wf(x: int = 0) -> int:
    """Ten Python tasks in series: the engine's cost per task process."""
    v = x
    for _ in range(10):
        v = noop(x=v)
    return v


@workflow
def python_chain100_wf(x: int = 0) -> int:
    """A hundred Python no-op tasks in series (bench/warm_workers.py)."""
    v = x
    for _ in range(100):
        v = noop(x=v)
    return v


@task
def ints(n: int) -> list[int]:
    return list(range(n))


@workflow
def python_map_wf(n: int = 1000) -> list[int]:
    """A map task of `n` Python no-op items (bench/warm_workers.py --map)."""
    return map_task(noop)(x=ints(n=n))


@workflow
def sleep_wf() -> None:
    """One core-sleep node of 0 s, no process: what bench/admin_api.py creates executions of."""
    sleep_leaf(duration=timedelta(seconds=0))


@task
def durations(n: int, seconds: int) -> list[timedelta]:
    """`n` sleep durations: the items of map_core_wf's map task."""
    return [timedelta(seconds=seconds)] * n


@workflow
def map_core_wf(n: int = 1000, seconds: int = 0) -> None:
    """A map task of `n` core-sleep items (in-engine, no process per item)."""
    map_task(sleep_leaf)(duration=durations(n=n, seconds=seconds))
