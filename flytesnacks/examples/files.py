"""Files and directories (blobs): produced, passed along and consumed."""

import os
import typing

from flytekit import current_context, task, workflow
from flytekit.types.directory import FlyteDirectory
from flytekit.types.file import FlyteFile

CSVFile = FlyteFile[typing.TypeVar("csv")]


@task
def write_report(lines: typing.List[str]) -> CSVFile:
    path = os.path.join(current_context().working_directory, "report.csv")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return CSVFile(path)


@task
def count_lines(report: CSVFile) -> int:
    with open(report.download()) as f:
        return len(f.read().splitlines())


@task
def split_into_dir(report: FlyteFile, parts: int) -> FlyteDirectory:
    out = os.path.join(current_context().working_directory, "parts")
    os.makedirs(out, exist_ok=True)
    with open(report.download()) as f:
        lines = f.read().splitlines()
    for i in range(parts):
        with open(os.path.join(out, f"part-{i}.txt"), "w") as f:
            f.write("\n".join(lines[i::parts]))
    return FlyteDirectory(out)


@task
def list_dir(d: FlyteDirectory) -> typing.List[str]:
    return sorted(os.listdir(d.download()))


@workflow
def files_wf(lines: typing.List[str] = ["a,1", "b,2", "c,3"], parts: int = 2) -> typing.Tuple[int, typing.List[str]]:
    report = write_report(lines=lines)
    return count_lines(report=report), list_dir(d=split_into_dir(report=report, parts=parts))


@workflow
def file_outputs_wf(
    lines: typing.List[str] = ["x,1", "y,2", "z,3", "w,4"], parts: int = 2
) -> typing.Tuple[CSVFile, FlyteDirectory]:
    """A file and a directory as workflow outputs, for the client to read."""
    report = write_report(lines=lines)
    return report, split_into_dir(report=report, parts=parts)
