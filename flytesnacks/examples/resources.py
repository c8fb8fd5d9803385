"""Task resources as a user writes them: requests and limits of CPU and memory (issue 15 item 10)."""

import pathlib
import time

from flytekit import Resources, task, workflow


@task(requests=Resources(cpu="64", mem="1Ti"))
def needs_a_big_machine() -> str:
    return "ran"


@workflow
def too_big_wf() -> str:
    """No host of a local install has 64 CPUs and 1 TiB: this fails at once."""
    return needs_a_big_machine()


@task(requests=Resources(cpu="100m", mem="200Mi"), limits=Resources(mem="200Mi"))
def memory_hog(mib: int, hold_seconds: int) -> int:
    """Fills `mib` MiB, 16 MiB at a time, and holds it (as a long computation over it would)."""
    chunks = [b"x" * (16 * 1024 * 1024) for _ in range(max(1, mib // 16))]
    time.sleep(hold_seconds)
    return sum(len(c) for c in chunks) // (1024 * 1024)


@workflow
def memory_hog_wf(mib: int = 1024, hold_seconds: int = 60) -> int:
    """Uses more memory than its 200 MiB limit: killed as OOMKilled."""
    return memory_hog(mib=mib, hold_seconds=hold_seconds)


@task(requests=Resources(cpu="2", mem="100Mi"))
def whole_host(marker_dir: str, tag: str, seconds: int) -> str:
    """Records when it ran in `<marker_dir>/<tag>` (start and end, wall clock)."""
    start = time.time()
    time.sleep(seconds)
    end = time.time()
    pathlib.Path(marker_dir, tag).write_text(f"{start} {end}\n")
    return tag


@workflow
def two_whole_host_tasks_wf(marker_dir: str, seconds: int = 3):
    """Two independent tasks that each request two CPUs: on a two-CPU host they take turns."""
    whole_host(marker_dir=marker_dir, tag="a", seconds=seconds)
    whole_host(marker_dir=marker_dir, tag="b", seconds=seconds)


def _memory_cgroup() -> str:
    """`<dir> <limit>` of the memory cgroup this process is in (v1 hierarchy, else v2)."""
    import os

    lines = [line.rstrip("\n").split(":", 2) for line in open("/proc/self/cgroup")]
    v1 = [path for _, controllers, path in lines if "memory" in controllers.split(",")]
    if v1:
        directory, limit = "/sys/fs/cgroup/memory" + v1[0], "memory.limit_in_bytes"
    else:
        path = [p for i, _, p in lines if i == "0"][0]
        root = "/sys/fs/cgroup" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "/sys/fs/cgroup/unified"
        directory, limit = root + path, "memory.max"
    with open(os.path.join(directory, limit)) as f:
        return f"{os.path.normpath(directory)} {f.read().strip()}"


@task(requests=Resources(cpu="100m", mem="200Mi"), limits=Resources(mem="200Mi"))
def memory_spike(marker_dir: str) -> int:
    """Records its memory cgroup in `<marker_dir>/cgroup`, waits for `<marker_dir>/go`, then
    asks for 1 GiB in one go (no 100 ms sampler sees that before it is there)."""
    marker = pathlib.Path(marker_dir)
    (marker / "cgroup.tmp").write_text(_memory_cgroup())
    (marker / "cgroup.tmp").rename(marker / "cgroup")
    while not (marker / "go").exists():
        time.sleep(0.05)
    block = bytearray(1 << 30)
    return len(block) >> 20


@workflow
def memory_spike_wf(marker_dir: str) -> int:
    """1 GiB at once under a 200 MiB limit: the kernel kills it (OOMKilled)."""
    return memory_spike(marker_dir=marker_dir)
