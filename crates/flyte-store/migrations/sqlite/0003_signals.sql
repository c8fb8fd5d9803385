-- Signals (flyteadmin `signals`, SignalService): one per execution and signal id, created by
-- the engine when a gate node waits (GetOrCreateSignal) and set by a person (SetSignal).
-- `type` is the encoded core.LiteralType, `value` the encoded core.Literal once set.

CREATE TABLE signals (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    project        TEXT    NOT NULL,
    domain         TEXT    NOT NULL,
    execution_name TEXT    NOT NULL,
    signal_id      TEXT    NOT NULL,
    type           BLOB    NOT NULL,
    value          BLOB,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    FOREIGN KEY (project, domain, execution_name) REFERENCES executions (project, domain, name)
);
-- The key; also ListSignals of one execution (its prefix).
CREATE UNIQUE INDEX signals_key ON signals (project, domain, execution_name, signal_id);
