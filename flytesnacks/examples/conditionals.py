"""Branch nodes: if / elif / else, a branch with an error, and conditions on task outputs."""

from flytekit import conditional, task, workflow


@task
def square(x: int) -> int:
    return x * x


@task
def negate(x: int) -> int:
    return -x


@task
def is_even(x: int) -> bool:
    return x % 2 == 0


@task
def label(x: int) -> str:
    return f"value {x}"


@workflow
def sign_wf(x: int = 3) -> int:
    return (
        conditional("sign")
        .if_(x > 0)
        .then(square(x=x))
        .elif_(x < 0)
        .then(negate(x=x))
        .else_()
        .then(square(x=0))
    )


@workflow
def parity_wf(x: int = 4) -> str:
    even = is_even(x=x)
    doubled = conditional("parity").if_(even.is_true()).then(square(x=x)).else_().then(negate(x=x))
    return label(x=doubled)


@workflow
def guarded_wf(x: int = 1) -> int:
    return (
        conditional("guard")
        .if_((x >= 0) & (x < 100))
        .then(square(x=x))
        .else_()
        .fail("x must be in [0, 100)")
    )


@workflow
def after_upstream_wf(x: int = 3) -> int:
    # The condition reads only the input; the cases read a task that runs before the
    # conditional, so the taken case waits for it (propeller: its connections.upstream).
    squared = square(x=x)
    return conditional("after").if_(x > 0).then(negate(x=squared)).else_().then(square(x=squared))


@workflow
def nested_wf(x: int = 3, big: bool = True) -> int:
    # A conditional inside a case of another: the inner branch node binds the input `x`.
    return (
        conditional("outer")
        .if_(big.is_true())
        .then(conditional("inner").if_(x > 5).then(square(x=x)).else_().then(negate(x=x)))
        .else_()
        .then(square(x=0))
    )
