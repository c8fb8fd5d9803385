"""Map tasks (array nodes): over one list, with a fixed input bound via functools.partial."""

import functools
import typing

from flytekit import map_task, task, workflow


@task
def square(x: int) -> int:
    return x * x


@task
def power(x: int, exponent: int) -> int:
    return x**exponent


@task
def total(values: typing.List[int]) -> int:
    return sum(values)


@workflow
def squares_wf(xs: typing.List[int] = [1, 2, 3]) -> int:
    return total(values=map_task(square)(x=xs))


@workflow
def powers_wf(xs: typing.List[int] = [1, 2, 3], exponent: int = 3) -> typing.List[int]:
    return map_task(functools.partial(power, exponent=exponent), concurrency=2, min_success_ratio=1.0)(x=xs)
