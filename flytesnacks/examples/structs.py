"""Dataclasses as inputs and outputs, nested, and their attributes used in bindings."""

import typing
from dataclasses import dataclass, field

from flytekit import task, workflow


@dataclass
class Point:
    x: float
    y: float


@dataclass
class Shape:
    name: str
    points: typing.List[Point] = field(default_factory=list)
    tags: typing.Dict[str, str] = field(default_factory=dict)
    closed: bool = False


@task
def make_shape(name: str, n: int) -> Shape:
    return Shape(name=name, points=[Point(x=float(i), y=float(i * i)) for i in range(n)], tags={"n": str(n)})


@task
def perimeter_points(shape: Shape) -> int:
    return len(shape.points)


@task
def shape_name(name: str) -> str:
    return name.upper()


@task
def first_point(shape: Shape) -> Point:
    return shape.points[0]


@workflow
def shape_wf(name: str = "triangle", n: int = 3) -> typing.Tuple[int, str, Point]:
    s = make_shape(name=name, n=n)
    # Attribute access on a promise binds with an attribute path.
    return perimeter_points(shape=s), shape_name(name=s.name), first_point(shape=s)


@workflow
def point_wf(p: Point = Point(x=1.0, y=2.0)) -> Shape:
    return make_shape(name="from-point", n=2)
