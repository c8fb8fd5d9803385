"""Chains of Python tasks: for measuring per-node cost and for crash-recovery tests.

Each step may sleep (``delay`` seconds) and, when ``marker_dir`` is set, appends one line to
``<marker_dir>/step-<i>`` every time it runs, so a test can prove no step ran twice.
"""

import os
import time

from flytekit import task, workflow


@task
def step(x: int, i: int, delay: float, marker_dir: str) -> int:
    print(f"step {i}: {x} -> {x + i}", flush=True)
    if delay > 0:
        time.sleep(delay)
    if marker_dir:
        with open(os.path.join(marker_dir, f"step-{i}"), "a") as f:
            f.write(f"{os.getpid()} attempt {os.environ.get('FLYTE_ATTEMPT_NUMBER', '?')}\n")
    return x + i


@workflow
def chain3_wf(x: int = 0, delay: float = 0.0, marker_dir: str = "") -> int:
    a = step(x=x, i=1, delay=delay, marker_dir=marker_dir)
    b = step(x=a, i=2, delay=delay, marker_dir=marker_dir)
    return step(x=b, i=3, delay=delay, marker_dir=marker_dir)


@workflow
def chain10_wf(x: int = 0, delay: float = 0.0, marker_dir: str = "") -> int:
    """Ten steps in a row: x + 1 + 2 + ... + 10 = x + 55."""
    v = x
    for i in range(1, 11):
        v = step(x=v, i=i, delay=delay, marker_dir=marker_dir)
    return v
