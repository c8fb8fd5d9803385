"""Lists and dicts: as task inputs and outputs, nested, and built from promises in bindings."""

import typing

from flytekit import task, workflow


@task
def count_words(texts: typing.List[str]) -> typing.Dict[str, int]:
    counts: typing.Dict[str, int] = {}
    for text in texts:
        for word in text.split():
            counts[word] = counts.get(word, 0) + 1
    return counts


@task
def top_words(counts: typing.Dict[str, int], k: int) -> typing.List[str]:
    return [w for w, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:k]]


@task
def matrix(n: int) -> typing.List[typing.List[int]]:
    return [[i * j for j in range(n)] for i in range(n)]


@task
def nested(groups: typing.Dict[str, typing.List[int]]) -> typing.List[typing.Dict[str, int]]:
    return [{k: sum(v)} for k, v in groups.items()]


@task
def length(items: typing.List[int]) -> int:
    return len(items)


@workflow
def words_wf(texts: typing.List[str] = ["a b", "b c"], k: int = 2) -> typing.List[str]:
    return top_words(counts=count_words(texts=texts), k=k)


@workflow
def nested_wf(n: int = 3) -> typing.Tuple[typing.List[typing.List[int]], typing.List[typing.Dict[str, int]], int]:
    m = matrix(n=n)
    # Collections and maps of promises: the binding is built from upstream outputs.
    g = nested(groups={"n": [n, n], "sq": [n]})
    return m, g, length(items=[n, n, n])
