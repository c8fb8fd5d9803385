-- Launch-plan schedules (crates/flyte-scheduler, docs/schedules.md). One row per launch plan
-- version that was ever activated: when it was last activated (the database's clock, written
-- in the activating transaction) and the latest tick the scheduler launched (or gave up on)
-- since. The scheduler catches up from max(activated_at, last_tick_at), so a restart neither
-- loses nor repeats a tick. Times are microseconds since the epoch (as elsewhere).

CREATE TABLE launch_plan_schedules (
    project      TEXT    NOT NULL,
    domain       TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    version      TEXT    NOT NULL,
    activated_at INTEGER NOT NULL,
    last_tick_at INTEGER,
    -- Why the last tick could not launch ('' when it did).
    last_error   TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (project, domain, name, version)
);
