-- Launch-plan schedules, PostgreSQL. The same table as ../sqlite/0008_schedules.sql (which
-- explains it); keep the two in step.

CREATE TABLE launch_plan_schedules (
    project      TEXT COLLATE "C" NOT NULL,
    domain       TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    version      TEXT COLLATE "C" NOT NULL,
    activated_at TIMESTAMPTZ      NOT NULL,
    last_tick_at TIMESTAMPTZ,
    last_error   TEXT             NOT NULL DEFAULT '',
    PRIMARY KEY (project, domain, name, version)
);
