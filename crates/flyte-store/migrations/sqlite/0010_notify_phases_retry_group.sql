-- What the terminal-phase write and the dynamic-task listing need without decoding payloads:
--
-- * executions.notify_phases: the terminal phases the execution asks to be notified of
--   (resolved at creation from its spec and launch plan, as flyteadmin does), as
--   `,SUCCEEDED,FAILED,`; the notification outbox gets a row only for these. Executions
--   created before this migration keep every terminal phase, as before: the notifier
--   resolves them again and closes those with nothing to send.
-- * node_executions.retry_group: the parent's attempt a child node was made under
--   (NodeExecutionMetaData.retry_group; empty for top-level nodes and older rows), so
--   ListNodeExecutionsForTask filters in the query and pages stay full.

ALTER TABLE executions ADD COLUMN notify_phases TEXT NOT NULL
    DEFAULT ',SUCCEEDED,FAILED,TIMED_OUT,ABORTED,';
ALTER TABLE node_executions ADD COLUMN retry_group TEXT NOT NULL DEFAULT '';
