// A launch plan's active schedule (the server's schedules API) and its scheduled executions.
import type { ComponentChildren } from "preact";
import { api } from "../api";
import { formatTime } from "../format";
import { paths } from "../router";
import { useScheduleRefresh } from "../scheduleLive";
import type { Execution, ScheduleView } from "../types";
import { ErrorBox, Loading, Phase, Section, useAsync } from "./common";

/** ExecutionMode SCHEDULED: the store filters on the enum's number, as flyteadmin does. */
const MODE_SCHEDULED = 1;
const RECENT = 10;

/**
 * The schedule of a launch plan, when it has an active one. With `version`, only when that
 * version is the active one (another version's page would show a schedule it does not have).
 * No schedule (404) shows nothing; other errors show as errors.
 */
export function LaunchPlanSchedule({ project, domain, name, version }: { project: string; domain: string; name: string; version?: string }) {
  const r = useAsync(() => api.schedule(project, domain, name), [project, domain, name]);
  // Follows its ticks: re-read after the next one and whenever an execution starts or moves.
  const refreshes = useScheduleRefresh(project, domain, r.data?.next_ticks, r.reload);
  return (
    <ScheduleBlock schedule={r.data} error={r.error} version={version}>
      <ScheduledExecutions project={project} domain={domain} name={name} refresh={refreshes} />
    </ScheduleBlock>
  );
}

/** What `LaunchPlanSchedule` shows once loaded (`schedule` null: none active). */
export function ScheduleBlock(props: { schedule?: ScheduleView | null; error?: unknown; version?: string; children?: ComponentChildren }) {
  const { schedule, error, version, children } = props;
  if (error) return <ErrorBox error={error} what="the schedule" />;
  if (!schedule || (version !== undefined && schedule.version !== version)) return null;
  return (
    <Section title="Schedule" id="lp-schedule-h">
      <ScheduleFacts s={schedule} />
      {children}
    </Section>
  );
}

export function ScheduleFacts({ s }: { s: ScheduleView }) {
  return (
    <>
      {s.last_error ? (
        <div class="error-box" role="alert" data-testid="schedule-error">
          <strong>The last tick did not launch</strong>
          <p>{s.last_error}</p>
        </div>
      ) : null}
      <dl class="facts" aria-label="Schedule">
        <dt>Runs</dt>
        <dd data-testid="schedule-text">
          {s.schedule}
          {s.time_zone && s.time_zone !== "UTC" ? ` (${s.time_zone})` : ""}
        </dd>
        <dt>Version</dt>
        <dd class="mono">{s.version}</dd>
        {s.kickoff_time_input_arg ? (
          <>
            <dt>Kickoff input</dt>
            <dd class="mono">{s.kickoff_time_input_arg}</dd>
          </>
        ) : null}
        <dt>Active since</dt>
        <dd>{formatTime(s.active_since)}</dd>
        <dt>Last tick</dt>
        <dd>{s.last_tick ? formatTime(s.last_tick) : "none yet"}</dd>
        <dt>Next ticks</dt>
        <dd>
          {s.next_ticks.length === 0 ? (
            "none"
          ) : (
            <ol class="next-ticks" aria-label="Next ticks">
              {s.next_ticks.slice(0, 3).map((t) => (
                <li key={t}>
                  <time dateTime={t}>{formatTime(t)}</time>
                </li>
              ))}
            </ol>
          )}
        </dd>
      </dl>
    </>
  );
}

function ScheduledExecutions({ project, domain, name, refresh }: { project: string; domain: string; name: string; refresh: number }) {
  const r = useAsync(
    () =>
      api.executions(project, domain, {
        limit: RECENT,
        filters: `eq(launch_plan.name,${name})+eq(mode,${MODE_SCHEDULED})`,
        sortKey: "created_at",
      }),
    [project, domain, name, refresh],
  );
  return (
    <>
      <h3>Recent scheduled executions</h3>
      {r.error ? <ErrorBox error={r.error} what="scheduled executions" /> : null}
      {r.loading && !r.data ? <Loading what="scheduled executions" /> : null}
      {r.data ? <ScheduledTable list={r.data.executions ?? []} /> : null}
    </>
  );
}

export function ScheduledTable({ list }: { list: Execution[] }) {
  if (list.length === 0) return <p class="empty">No scheduled executions yet.</p>;
  return (
    <table class="grid" aria-label="Scheduled executions">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Phase</th>
          <th scope="col">Mode</th>
          <th scope="col">Scheduled for</th>
          <th scope="col">Version</th>
        </tr>
      </thead>
      <tbody>
        {list.map((e) => (
          <tr key={e.id.name}>
            <td>
              <a href={paths.execution(e.id.project, e.id.domain, e.id.name)}>{e.id.name}</a>
            </td>
            <td>
              <Phase phase={e.closure.phase} />
            </td>
            <td>{(e.spec.metadata?.mode ?? "–").toLowerCase()}</td>
            <td>{formatTime(e.spec.metadata?.scheduled_at)}</td>
            <td class="mono">{e.spec.launch_plan?.version ?? "–"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
