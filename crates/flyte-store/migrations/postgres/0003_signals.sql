-- Signals, PostgreSQL. The same table, columns and indexes as ../sqlite/0003_signals.sql;
-- keep the two in step.

CREATE TABLE signals (
    id                  BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project             TEXT COLLATE "C" NOT NULL,
    domain              TEXT COLLATE "C" NOT NULL,
    execution_name      TEXT COLLATE "C" NOT NULL,
    signal_id           TEXT COLLATE "C" NOT NULL,
    type                BYTEA NOT NULL,
    value               BYTEA,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (project, domain, execution_name) REFERENCES executions (project, domain, name)
);
-- The key; also ListSignals of one execution (its prefix).
CREATE UNIQUE INDEX signals_key ON signals (project, domain, execution_name, signal_id);
