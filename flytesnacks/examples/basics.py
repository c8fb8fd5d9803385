"""Typed tasks: primitives, multiple named outputs, optionals, unions and enums."""

import datetime
import enum
import typing

from flytekit import Resources, task, workflow


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


Stats = typing.NamedTuple("Stats", [("total", int), ("mean", float)])


@task
def say_hello(name: str) -> str:
    """Greets someone."""
    return f"hello {name}"


# No limit given, so the request is the limit (as on Kubernetes): flytekit itself takes about
# 60 MiB, and some 80 MiB once it reads its inputs from S3 (s3fs, botocore).
@task(retries=2, cache=True, cache_version="1", requests=Resources(cpu="100m", mem="256Mi"))
def add(a: int, b: int) -> int:
    return a + b


@task
def stats(values: typing.List[int]) -> Stats:
    total = sum(values)
    return Stats(total=total, mean=total / len(values) if values else 0.0)


@task
def describe(flag: bool, when: datetime.datetime, wait: datetime.timedelta, ratio: float) -> str:
    return f"{flag} {when.isoformat()} {wait.total_seconds()} {ratio}"


@task
def maybe_double(x: typing.Optional[int] = None) -> typing.Optional[int]:
    return None if x is None else 2 * x


@task
def as_text(value: typing.Union[int, str]) -> str:
    return str(value)


@task
def paint(color: Color) -> Color:
    return Color.BLUE if color == Color.RED else Color.RED


@task
def noop() -> None:
    pass


@workflow
def hello_wf(name: str = "world") -> str:
    """The smallest workflow: one task."""
    return say_hello(name=name)


@workflow
def arithmetic_wf(a: int, b: int = 2) -> Stats:
    s = add(a=a, b=b)
    t = add(a=s, b=b)
    return stats(values=[a, b, s, t])


@workflow
def types_wf(
    flag: bool = True,
    when: datetime.datetime = datetime.datetime(2024, 1, 1),
    wait: datetime.timedelta = datetime.timedelta(seconds=5),
    ratio: float = 0.5,
    maybe: typing.Optional[int] = None,
    color: Color = Color.GREEN,
) -> typing.Tuple[str, typing.Optional[int], str, Color]:
    d = describe(flag=flag, when=when, wait=wait, ratio=ratio)
    m = maybe_double(x=maybe)
    u = as_text(value=d)
    c = paint(color=color)
    n = noop()
    d >> n
    return d, m, u, c
