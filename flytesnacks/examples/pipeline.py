"""A typed pipeline: ints, floats, strings, lists, dicts and dataclasses passed between tasks."""

import typing
from dataclasses import dataclass, field

from flytekit import task, workflow


@dataclass
class Summary:
    label: str
    count: int
    mean: float
    tags: typing.Dict[str, str] = field(default_factory=dict)


@task
def make_values(n: int, scale: float) -> typing.List[float]:
    return [scale * i for i in range(1, n + 1)]


@task
def histogram(values: typing.List[float], buckets: int) -> typing.Dict[str, int]:
    top = max(values) if values else 1.0
    counts: typing.Dict[str, int] = {}
    for v in values:
        key = f"b{min(buckets - 1, int(buckets * v / (top + 1e-9)))}"
        counts[key] = counts.get(key, 0) + 1
    return counts


@task
def summarize(label: str, values: typing.List[float], hist: typing.Dict[str, int]) -> Summary:
    mean = sum(values) / len(values) if values else 0.0
    return Summary(label=label, count=len(values), mean=mean, tags={k: str(v) for k, v in sorted(hist.items())})


@task
def render(summary: Summary, suffix: str) -> str:
    return f"{summary.label}:{summary.count}:{summary.mean:.2f}{suffix}"


@workflow
def pipeline_wf(
    n: int = 4, scale: float = 1.5, label: str = "run", buckets: int = 2
) -> typing.Tuple[str, Summary, typing.Dict[str, int], int]:
    values = make_values(n=n, scale=scale)
    hist = histogram(values=values, buckets=buckets)
    s = summarize(label=label, values=values, hist=hist)
    # An attribute path into a dataclass output as a binding.
    return render(summary=s, suffix="!"), s, hist, s.count
