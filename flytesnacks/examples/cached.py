"""Task output caching: every body run appends a line to the file `log` names (an input the
cache key ignores), so a test can count runs."""

import functools
import time
import typing

from flytekit import dynamic, map_task, task, workflow


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


@task
def plus_one(x: int) -> int:
    return x + 1


@dynamic(cache=True, cache_version="1.0", cache_ignore_input_vars=("log",))
def cached_dynamic(x: int, log: str) -> int:
    """A cached dynamic task: its outputs come from the sub-workflow it builds, and are cached
    once that has finished (as propeller caches a dynamic node on success)."""
    with open(log, "a") as f:
        f.write(f"{x}\n")
    return plus_one(x=plus_one(x=x))


@workflow
def cached_dynamic_wf(x: int, log: str) -> int:
    return cached_dynamic(x=x, log=log)
