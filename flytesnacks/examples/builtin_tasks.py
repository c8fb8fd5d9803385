"""Tasks the engine runs itself, without a process: ``echo`` and ``core-sleep``
(flytekitplugins-sleep)."""

import datetime
import typing

from flytekit import task, workflow
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
