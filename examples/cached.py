"""Task output caching: every body run appends a line to the file `log` names (an input the
cache key ignores), so a test can count runs."""

import functools
import time
import typing

from flytekit import map_task, task, workflow


@task(cache=True, cache_version="1.0", cache_ignore_input_vars=("log",))
def cached_square(x: int, log: str) -> int:
    with open(log, "a") as f:
        f.write(f"{x}\n")
    return x * x


@workflow
def cached_wf(x: int, log: str) -> int:
    return cached_square(x=x, log=log)


@task(cache=True, cache_serialize=True, cache_version="1.0", cache_ignore_input_vars=("log",))
def serialized_square(x: int, log: str) -> int:
    with open(log, "a") as f:
        f.write(f"{x}\n")
    time.sleep(3)
    return x * x


@workflow
def serialized_wf(x: int, log: str) -> int:
    return serialized_square(x=x, log=log)


@workflow
def cached_map_wf(xs: typing.List[int], log: str) -> typing.List[int]:
    return map_task(functools.partial(cached_square, log=log))(x=xs)
