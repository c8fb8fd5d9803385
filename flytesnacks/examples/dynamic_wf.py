"""Dynamic workflows: the graph is built at run time from the inputs."""

import typing

from flytekit import dynamic, task, workflow


@task
def fib_step(a: int, b: int) -> int:
    return a + b


@dynamic
def fibonacci(n: int) -> typing.List[int]:
    values = [0, 1]
    for _ in range(max(0, n - 2)):
        values.append(fib_step(a=values[-2], b=values[-1]))
    return values[:n]


@workflow
def fib_wf(n: int = 6) -> typing.List[int]:
    return fibonacci(n=n)
