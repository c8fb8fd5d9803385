"""Secrets a task requests (issue 15 item 6), read as flytekit users do:
`flytekit.current_context().secrets.get(group, key)`.

The operator provides them where the server looks (docs/secrets.md): the file
`<data_dir>/secrets/<group>/<key>`, or the server's environment variable
`FLYTE_SECRET_<GROUP>_<KEY>`. The tasks return a digest of what they read, never the value.
"""

import hashlib
import os
import stat

import flytekit
from flytekit import Secret, task, workflow

GROUP = "e2e-secrets"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@task(
    secret_requests=[
        Secret(group=GROUP, key="api_token", mount_requirement=Secret.MountType.ENV_VAR, env_var="API_TOKEN")
    ]
)
def token_from_env() -> str:
    """An environment-variable mount; `env_var` names one more variable with the value."""
    value = flytekit.current_context().secrets.get(GROUP, "api_token")
    assert os.environ["API_TOKEN"] == value, "env_var holds the value"
    assert os.environ["_FSEC_E2E-SECRETS_API_TOKEN"] == value, "flytekit's own variable"
    return _digest(value)


@task(
    secret_requests=[
        Secret(group=GROUP, key="db_password", mount_requirement=Secret.MountType.FILE, env_var="DB_PASSWORD_FILE")
    ]
)
def password_from_file() -> str:
    """A file mount; `env_var` names a variable with the file's path."""
    value = flytekit.current_context().secrets.get(GROUP, "db_password")
    path = os.environ["DB_PASSWORD_FILE"]
    with open(path) as f:
        assert f.read().strip() == value
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, "only the task's user reads it"
    assert not any(value in v for v in os.environ.values()), "a file mount stays out of the environment"
    return _digest(value)


@task(secret_requests=[Secret(group=GROUP, key="db_password")])
def password_default_mount() -> str:
    """No mount requirement: wherever the platform puts it, flytekit finds it."""
    return _digest(flytekit.current_context().secrets.get(GROUP, "db_password"))


@task
def without_a_request() -> str:
    """A task that requests nothing sees no secret, not even the server's own variables."""
    leaked = sorted(k for k in os.environ if k.startswith(("FLYTE_SECRET_", "_FSEC_")))
    if leaked:
        return "visible: " + ", ".join(leaked)
    try:
        flytekit.current_context().secrets.get(GROUP, "api_token")
    except ValueError:
        return "not visible"
    return "visible through flytekit"


@workflow
def secrets_wf() -> tuple[str, str, str, str]:
    return token_from_env(), password_from_file(), password_default_mount(), without_a_request()


@task(secret_requests=[Secret(group=GROUP, key="not_provided")])
def needs_a_missing_secret() -> str:
    return _digest(flytekit.current_context().secrets.get(GROUP, "not_provided"))


@workflow
def missing_secret_wf() -> str:
    """Requests a secret nobody provided: fails before the task starts, naming it."""
    return needs_a_missing_secret()
