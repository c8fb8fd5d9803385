"""Scheduled launch plans, as Flyte's scheduling guide writes them: a workflow that takes
the scheduled time as its kickoff input, run every minute by a fixed rate and by a cron
schedule. Registered inactive (as every example); activate with
`pyflyte register --activate-launchplans` or `pyflyte launchplan NAME VERSION --activate`."""

from datetime import datetime, timedelta

from flytekit import CronSchedule, FixedRate, LaunchPlan, task, workflow


@task
def format_date(run_date: datetime) -> str:
    return run_date.strftime("%Y-%m-%d %H:%M:%S")


@workflow
def date_formatter_wf(kickoff_time: datetime) -> str:
    return format_date(run_date=kickoff_time)


every_minute_lp = LaunchPlan.get_or_create(
    name="every_minute_lp",
    workflow=date_formatter_wf,
    schedule=FixedRate(duration=timedelta(minutes=1), kickoff_time_input_arg="kickoff_time"),
)

cron_minutely_lp = LaunchPlan.get_or_create(
    name="cron_minutely_lp",
    workflow=date_formatter_wf,
    schedule=CronSchedule(schedule="* * * * *", kickoff_time_input_arg="kickoff_time"),
)
