"""Tasks the engine runs itself, without a process: ``echo`` and ``core-sleep``
(flytekitplugins-sleep), alone and as the items of a map task."""

import datetime
import typing

from flytekit import map_task, task, workflow
from flytekit.core.task import Echo
from flytekitplugins.sleep import Sleep

echo_int = Echo(name="examples.builtin_tasks.echo_int", inputs={"a": int})
echo_pair = Echo(name="examples.builtin_tasks.echo_pair", inputs={"a": int, "b": str})


@task(task_config=Sleep())
def nap(duration: datetime.timedelta) -> None:
    """Runs in the engine (core-sleep): no container, no process."""


@workflow
def echo_wf(x: int = 3, s: str = "hi") -> typing.Tuple[int, int, str]:
    a = echo_int(a=x)
    b, c = echo_pair(a=a, b=s)
    return a, b, c


@workflow
def nap_wf(x: int = 1) -> int:
    n = nap(duration=datetime.timedelta(seconds=1))
    e = echo_int(a=x)
    n >> e
    return e


@task
def naps(n: int) -> typing.List[datetime.timedelta]:
    """`n` short sleep durations (0, 0.1 and 0.2 s in turn): the items of nap_map_wf's map."""
    return [datetime.timedelta(milliseconds=100 * (i % 3)) for i in range(n)]


@workflow
def nap_map_wf(n: int = 20) -> int:
    """A map task over core-sleep: flytekit gives it a container, the engine still runs each
    item itself, on its own duration."""
    slept = map_task(nap)(duration=naps(n=n))
    e = echo_int(a=n)
    slept >> e
    return e
