"""Advanced nodes, for tests/e2e/test_advanced.py: dynamic fan-out and nested dynamics, map tasks
(plain, partial success, a bound input), a subworkflow and a launch plan as nodes, gates and
signals, and tasks that leave side-effect files so a test can prove what a recover re-ran.

Tasks taking ``marker_dir`` append one line to ``<marker_dir>/<tag>`` every time they run;
``fragile``-style tasks fail until ``<marker_dir>/allow`` exists.
"""

import functools
import os
import typing
from datetime import timedelta

from flytekit import LaunchPlan, approve, dynamic, map_task, sleep, task, wait_for_input, workflow


def _mark(marker_dir: str, tag: str) -> None:
    if marker_dir:
        with open(os.path.join(marker_dir, tag), "a") as f:
            f.write(f"{os.getpid()} attempt {os.environ.get('FLYTE_ATTEMPT_NUMBER', '?')}\n")


def _allowed(marker_dir: str) -> bool:
    return bool(marker_dir) and os.path.exists(os.path.join(marker_dir, "allow"))


@task
def double(x: int) -> int:
    return 2 * x


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def add_all(values: typing.List[int]) -> int:
    return sum(values)


# --------------------------------------------------------------------------------------------
# Dynamic workflows.


@dynamic
def fan_out(n: int) -> int:
    """n parallel `double` nodes, summed by one more: 2 * (0 + 1 + ... + n-1)."""
    return add_all(values=[double(x=i) for i in range(n)])


@workflow
def fan_out_wf(n: int = 5) -> int:
    return fan_out(n=n)


@dynamic
def inner(k: int) -> typing.List[int]:
    return [double(x=10 * k + j) for j in range(k)]


@dynamic
def outer(n: int) -> typing.List[typing.List[int]]:
    """A dynamic whose nodes are dynamics: [[20], [40, 42], [60, 62, 64], ...]."""
    return [inner(k=k) for k in range(1, n + 1)]


@workflow
def nested_dynamic_wf(n: int = 3) -> typing.List[typing.List[int]]:
    return outer(n=n)


# --------------------------------------------------------------------------------------------
# Map tasks.


@task
def square(x: int) -> int:
    return x * x


@task
def picky(x: int) -> int:
    """Fails (not retried) on multiples of 3."""
    if x % 3 == 0:
        raise ValueError(f"picky: no multiples of 3, got {x}")
    return x


@task
def power(x: int, exponent: int) -> int:
    return x**exponent


@task
def count_present(values: typing.List[typing.Optional[int]]) -> int:
    return sum(1 for v in values if v is not None)


@workflow
def map_plain_wf(xs: typing.List[int] = [1, 2, 3, 4]) -> typing.Tuple[typing.List[int], int]:
    squares = map_task(square)(x=xs)
    return squares, add_all(values=squares)


@workflow
def map_partial_wf(
    xs: typing.List[int] = [1, 2, 3, 4, 5, 6],
) -> typing.Tuple[typing.List[typing.Optional[int]], int]:
    """Half may fail: the failed indices come back as None."""
    values = map_task(picky, min_success_ratio=0.5)(x=xs)
    return values, count_present(values=values)


@workflow
def map_bound_wf(xs: typing.List[int] = [1, 2, 3], exponent: int = 3) -> typing.List[int]:
    """`exponent` is bound (functools.partial): broadcast to every index."""
    return map_task(functools.partial(power, exponent=exponent), concurrency=2)(x=xs)


# --------------------------------------------------------------------------------------------
# A subworkflow and a launch plan as nodes.


@workflow
def double_then_add(x: int, y: int) -> int:
    return add(a=double(x=x), b=y)


double_then_add_one_lp = LaunchPlan.get_or_create(
    workflow=double_then_add,
    name="examples.advanced.double_then_add_one",
    fixed_inputs={"y": 1},
)


@workflow
def sub_and_lp_wf(x: int = 3) -> typing.Tuple[int, int]:
    """a = 2x + 10 (subworkflow node), b = 2a + 1 (launch-plan node: a child execution)."""
    a = double_then_add(x=x, y=10)
    b = double_then_add_one_lp(x=a)
    return a, b


# --------------------------------------------------------------------------------------------
# Gates and signals.


@workflow
def sleep_gate_wf(x: int = 1) -> int:
    s = sleep(timedelta(seconds=2))
    d = double(x=x)
    s >> d
    return d


@workflow
def signal_wf(x: int = 1) -> int:
    """Waits for a typed input `y` (an int) and returns x + y."""
    y = wait_for_input("y", timeout=timedelta(hours=1), expected_type=int)
    return add(a=x, b=y)


@workflow
def approval_wf(x: int = 1) -> int:
    """2x, approved by a human, plus 1."""
    proposed = double(x=x)
    approved = approve(proposed, "approve-double", timeout=timedelta(hours=1))
    return add(a=approved, b=1)


# --------------------------------------------------------------------------------------------
# Failures to recover from: side-effect files show what ran again.


@task
def mark(x: int, tag: str, marker_dir: str) -> int:
    _mark(marker_dir, tag)
    return x + 1


@task
def fragile(x: int, marker_dir: str) -> int:
    _mark(marker_dir, "fragile")
    if not _allowed(marker_dir):
        raise ValueError("fragile: not allowed yet")
    return 100 * x


@workflow
def recover_wf(x: int = 1, marker_dir: str = "") -> int:
    """mark a (x+1) -> mark b (x+2) -> fragile (100(x+2)) -> mark d (+1)."""
    a = mark(x=x, tag="a", marker_dir=marker_dir)
    b = mark(x=a, tag="b", marker_dir=marker_dir)
    c = fragile(x=b, marker_dir=marker_dir)
    return mark(x=c, tag="d", marker_dir=marker_dir)


@task
def item(i: int, fail_on: int, marker_dir: str) -> int:
    _mark(marker_dir, f"item-{i}")
    if i == fail_on and not _allowed(marker_dir):
        raise ValueError(f"item {i}: not allowed yet")
    return 10 * i


@dynamic
def fragile_fan_out(n: int, fail_on: int, marker_dir: str) -> int:
    _mark(marker_dir, "dynamic-body")
    return add_all(values=[item(i=i, fail_on=fail_on, marker_dir=marker_dir) for i in range(n)])


@workflow
def recover_dynamic_wf(n: int = 4, fail_on: int = 2, marker_dir: str = "") -> int:
    """mark a, then a dynamic of n items (one fails until allowed), summed: 10 * (0 + ... + n-1)."""
    a = mark(x=0, tag="a", marker_dir=marker_dir)
    total = fragile_fan_out(n=n, fail_on=fail_on, marker_dir=marker_dir)
    a >> total
    return total


@workflow
def recover_map_wf(xs: typing.List[int] = [0, 1, 2, 3], fail_on: int = 2, marker_dir: str = "") -> int:
    """A map task over xs (one index fails until allowed), then its sum."""
    values = map_task(functools.partial(item, fail_on=fail_on, marker_dir=marker_dir))(i=xs)
    return add_all(values=values)
