"""Files, directories, a dataframe and cached tasks: what must work with S3 as the blob store."""

import os
import tempfile

import pandas as pd
from flytekit import task, workflow
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile


@task(cache=True, cache_version="1")
def make_file(text: str) -> FlyteFile:
    path = os.path.join(tempfile.mkdtemp(), "greeting.txt")
    with open(path, "w") as f:
        f.write(text)
    return FlyteFile(path)


@task
def make_dir(f: FlyteFile, extra: FlyteFile) -> FlyteDirectory:
    with open(f) as src:
        text = src.read()
    with open(extra) as src:
        text += "+" + src.read()
    out = tempfile.mkdtemp()
    for i in range(3):
        with open(os.path.join(out, f"part{i}.txt"), "w") as dst:
            dst.write(f"{text}-{i}")
    return FlyteDirectory(out)


@task
def summarize(d: FlyteDirectory) -> str:
    local = d.download()
    names = sorted(os.listdir(local))
    with open(os.path.join(local, names[0])) as f:
        return ",".join(names) + "|" + f.read()


@task(cache=True, cache_version="1")
def make_frame(text: str) -> pd.DataFrame:
    return pd.DataFrame({"word": [text] * 3, "n": [1, 2, 3]})


@task
def total(df: pd.DataFrame) -> int:
    return int(df["n"].sum())


@workflow
def wf(text: str, extra: FlyteFile) -> tuple[FlyteFile, FlyteDirectory, str, pd.DataFrame, int]:
    f = make_file(text=text)
    d = make_dir(f=f, extra=extra)
    df = make_frame(text=text)
    return f, d, summarize(d=d), df, total(df=df)
