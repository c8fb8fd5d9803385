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


@task(cache=True, cache_serialize=True, cache_version="1.0", cache_ignore_input_vars=("log", "seconds"))
def serialized_exclusive(x: int, log: str, seconds: float) -> int:
    """Writes `start <execution>` and, after `seconds`, `end <execution>` to `log` per body run;
    `overlap <execution>` instead of `start` if another body holds the lock file next to `log`
    (the OS releases it when a body dies) — cache_serialize must never run two at once, even
    across a server restart."""
    import fcntl
    import os

    execution = os.environ.get("FLYTE_INTERNAL_EXECUTION_ID", "?")
    with open(log + ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            state = "start"
        except BlockingIOError:
            state = "overlap"
        with open(log, "a") as f:
            f.write(f"{state} {execution}\n")
        time.sleep(seconds)
        with open(log, "a") as f:
            f.write(f"end {execution}\n")
    return x * x


@workflow
def serialized_exclusive_wf(x: int, log: str, seconds: float) -> int:
    return serialized_exclusive(x=x, log=log, seconds=seconds)


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
