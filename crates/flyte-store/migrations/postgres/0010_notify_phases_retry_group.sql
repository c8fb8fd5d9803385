-- The same columns as ../sqlite/0010_notify_phases_retry_group.sql (which explains them);
-- keep the two in step.

ALTER TABLE executions ADD COLUMN notify_phases TEXT NOT NULL
    DEFAULT ',SUCCEEDED,FAILED,TIMED_OUT,ABORTED,';
ALTER TABLE node_executions ADD COLUMN retry_group TEXT COLLATE "C" NOT NULL DEFAULT '';
