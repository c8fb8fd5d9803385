"""Eager workflows: an `@eager` task drives executions from Python, here one eager task nested
in another (issue 15 items 3 and 4)."""

from flytekit import eager, task


@task
def add_one(x: int) -> int:
    return x + 1


@task
def double(x: int) -> int:
    return x * 2


@eager
async def eager_inner(x: int) -> int:
    """Launches two task executions, one after the other, and waits for each."""
    y = add_one(x=x)
    return double(x=y)


@eager
async def eager_outer(x: int) -> int:
    """Two nesting levels: waits for `eager_inner`, which waits for its tasks."""
    y = await eager_inner(x=x)
    return add_one(x=y)
