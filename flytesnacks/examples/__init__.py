"""Flyte-RS example workflows: the seed of the golden suite.

Every module is plain flytekit 1.16 code and registers with ``pyflyte register examples/``.
Each covers one feature (typed tasks, dataclasses, collections, conditionals,
subworkflows, launch plans, map tasks, dynamic workflows, gates, files and directories),
so a failure points at the feature that broke.
"""
