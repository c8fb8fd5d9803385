"""Workflows inside workflows: a subworkflow node, nested twice, and outputs passed on."""

import typing

from flytekit import task, workflow


@task
def inc(x: int) -> int:
    return x + 1


@task
def join(a: int, b: int) -> str:
    return f"{a}-{b}"


@workflow
def inc_twice(x: int) -> int:
    return inc(x=inc(x=x))


@workflow
def inc_four(x: int) -> int:
    return inc_twice(x=inc_twice(x=x))


@workflow
def parent_wf(x: int = 0) -> typing.Tuple[int, str]:
    y = inc_four(x=x)
    z = inc_twice(x=y)
    return z, join(a=y, b=z)
