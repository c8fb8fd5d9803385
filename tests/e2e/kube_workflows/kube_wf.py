"""Workflows of tests/e2e/test_kubernetes.py: every task runs as a pod (the API double's
kubelet emulation runs its container command as a local process)."""

import os
import time
import typing

from flytekit import Secret, current_context, map_task, task, workflow


@task
def square(x: int) -> int:
    print(f"kube e2e: squaring {x}", flush=True)
    return x * x


@task
def add_one(x: int) -> int:
    return x + 1


@workflow
def pods_wf(x: int = 3) -> int:
    return add_one(x=square(x=x))


@task
def broken(x: int) -> int:
    if x > 0:
        raise ValueError(f"kube e2e: cannot take {x}")
    return x


@workflow
def broken_wf(x: int = 7) -> int:
    return broken(x=x)


@task
def sleepy(pid_file: str) -> int:
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    time.sleep(600)
    return 1


@workflow
def sleepy_wf(pid_file: str) -> int:
    return sleepy(pid_file=pid_file)


@task
def total(values: typing.List[int]) -> int:
    return sum(values)


@workflow
def map_wf(xs: typing.List[int] = [1, 2, 3]) -> int:
    return total(values=map_task(square)(x=xs))


@task
def square_but_not_3(x: int) -> int:
    if x == 3:
        raise ValueError("kube e2e: no 3")
    time.sleep(2)  # long enough for the pods to overlap, so the limit is what stops them
    return x * x


@task
def total_present(values: typing.List[typing.Optional[int]]) -> int:
    return sum(v for v in values if v is not None)


@workflow
def bounded_map_wf(xs: typing.List[int] = [1, 2, 3, 4, 5]) -> int:
    squares = map_task(square_but_not_3, concurrency=2, min_success_ratio=0.6)(x=xs)
    return total_present(values=squares)


@workflow
def strict_map_wf(xs: typing.List[int] = [1, 2, 3, 4, 5]) -> int:
    squares = map_task(square_but_not_3, concurrency=2, min_success_ratio=0.9)(x=xs)
    return total_present(values=squares)


@task
def gated(pid_file: str, gate: str) -> int:
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    while not os.path.exists(gate):
        time.sleep(0.2)
    return 5


@workflow
def gated_wf(pid_file: str, gate: str) -> int:
    return gated(pid_file=pid_file, gate=gate)


@task(retries=1)
def hungry(x: int) -> int:
    return x * 10


@workflow
def hungry_wf(x: int = 4) -> int:
    return hungry(x=x)


SECRET_GROUP = "kube-creds"


def _digest(value: str) -> str:
    import hashlib

    return hashlib.sha256(value.encode()).hexdigest()


@task(
    secret_requests=[
        Secret(group=SECRET_GROUP, key="api_token", mount_requirement=Secret.MountType.ENV_VAR),
        Secret(group=SECRET_GROUP, key="db_password", mount_requirement=Secret.MountType.FILE,
               env_var="DB_PASSWORD_FILE"),
    ]
)
def uses_secrets() -> typing.List[str]:
    """Digests of what flytekit reads, never the values."""
    secrets = current_context().secrets
    token = secrets.get(SECRET_GROUP, "api_token")
    password = secrets.get(SECRET_GROUP, "db_password")
    with open(os.environ["DB_PASSWORD_FILE"]) as f:
        assert f.read().strip() == password, "env_var names the mounted file"
    return [_digest(token), _digest(password)]


@workflow
def secrets_wf() -> typing.List[str]:
    return uses_secrets()


@task(secret_requests=[Secret(group="kube-missing", key="nope", mount_requirement=Secret.MountType.ENV_VAR)])
def missing_secret() -> str:
    return _digest(current_context().secrets.get("kube-missing", "nope"))


@workflow
def missing_secret_wf() -> str:
    return missing_secret()


@task
def over_quota(x: int) -> int:
    return x * 3


@workflow
def quota_wf(x: int = 5) -> int:
    return over_quota(x=x)
