"""Tasks whose image an operator maps to a Python environment of its own
(`engine.python_environments` on Flyte-RS's local backend): each task reports the
environment it ran in. On Kubernetes the image itself is the environment."""

import sys
import typing

from flytekit import task, workflow


@task(container_image="ghcr.io/acme/ml:1.0")
def in_ml_image() -> str:
    return sys.prefix


@task
def in_default_image() -> str:
    return sys.prefix


@workflow
def envs_wf() -> typing.Tuple[str, str]:
    return in_ml_image(), in_default_image()


@task(container_image="ghcr.io/acme/gone:1.0")
def in_missing_env() -> str:
    return sys.prefix


@workflow
def missing_env_wf() -> str:
    return in_missing_env()
