"""Launch plans: fixed and default inputs, and a launch plan used as a node of another workflow."""

from flytekit import LaunchPlan, task, workflow


@task
def scale(x: int, factor: int) -> int:
    return x * factor


@workflow
def scale_wf(x: int, factor: int = 2) -> int:
    return scale(x=x, factor=factor)


# factor can never be overridden; x defaults to 10.
triple_lp = LaunchPlan.get_or_create(
    workflow=scale_wf,
    name="examples.launch_plans.triple",
    default_inputs={"x": 10},
    fixed_inputs={"factor": 3},
)

# Both inputs have defaults; callers may override either.
defaults_lp = LaunchPlan.get_or_create(
    workflow=scale_wf,
    name="examples.launch_plans.defaults",
    default_inputs={"x": 1, "factor": 5},
)


@workflow
def calls_lp_wf(x: int = 4) -> int:
    """A launch-plan node: the child runs as its own execution."""
    return triple_lp(x=x)
