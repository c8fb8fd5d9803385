"""What a user reads back after a run: a task's Flyte Deck, inputs and outputs through
flyte:// URLs, execution metrics, a cached task, and a subworkflow whose own failure node
runs when it fails."""

import typing

from flytekit import Deck, task, workflow
from flytekit.types.error import FlyteError


@task(enable_deck=True)
def report(n: int) -> int:
    """Writes a deck (deck.html in its output prefix) and returns n squared."""
    Deck("summary", f"<h2>n squared is {n * n}</h2>")
    return n * n


@task
def describe(x: int, y: int) -> str:
    return f"{x}:{y}"


@workflow
def deck_wf(n: int = 3) -> str:
    return describe(x=n, y=report(n=n))


@task(cache=True, cache_version="1")
def cached_square(n: int) -> int:
    return n * n


@workflow
def cached_square_wf(n: int = 4) -> int:
    return cached_square(n=n)


@task
def explode(x: int) -> int:
    if x >= 0:
        raise ValueError(f"explode on purpose with x={x}")
    return x


@task
def sub_cleanup(x: int, err: typing.Optional[FlyteError] = None) -> None:
    """The subworkflow's own failure node: sees the subworkflow's inputs and its error."""
    print(f"cleaning up after x={x}: {err.message if err else 'no error'}")


@workflow(on_failure=sub_cleanup)
def fragile_sub(x: int) -> int:
    return explode(x=x)


@workflow
def fragile_parent_wf(x: int = 1) -> int:
    return fragile_sub(x=x)


@task
def slow_sub_cleanup(x: int, delay: float, marker_dir: str, err: typing.Optional[FlyteError] = None) -> None:
    """A failure node that takes a while, then leaves a marker line (one per run of its body)."""
    import os
    import time

    time.sleep(delay)
    if marker_dir:
        with open(os.path.join(marker_dir, "cleanup"), "a") as f:
            f.write(f"cleaned x={x} attempt {os.environ.get('FLYTE_ATTEMPT_NUMBER', '0')}\n")


@workflow(on_failure=slow_sub_cleanup)
def slow_fragile_sub(x: int, delay: float, marker_dir: str) -> int:
    return explode(x=x)


@workflow
def slow_fragile_parent_wf(x: int = 1, delay: float = 0.0, marker_dir: str = "") -> int:
    return slow_fragile_sub(x=x, delay=delay, marker_dir=marker_dir)
