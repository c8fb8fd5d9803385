// The active schedules of a project and domain (the server's schedules API), soonest first.
import { useMemo } from "preact/hooks";
import { api } from "../api";
import { ErrorBox, Loading, useAsync } from "../components/common";
import { formatTime } from "../format";
import { paths } from "../router";
import { useScheduleRefresh } from "../scheduleLive";
import type { ScheduleView } from "../types";

export function Schedules({ project, domain }: { project: string; domain: string }) {
  const r = useAsync(() => api.schedules(project, domain), [project, domain]);
  // Re-read after the soonest next tick and when an execution starts: the table follows the ticks.
  const list = r.data?.schedules;
  const soonest = useMemo(() => list?.map((s) => s.next_ticks[0]), [list]);
  useScheduleRefresh(project, domain, soonest, r.reload);
  return (
    <main id="main">
      <h1>
        Schedules <span class="muted">{project}/{domain}</span>
      </h1>
      {r.error ? <ErrorBox error={r.error} what="schedules" /> : null}
      {r.loading && !r.data ? <Loading what="schedules" /> : null}
      {r.data ? <ScheduleTable list={r.data.schedules ?? []} /> : null}
    </main>
  );
}

/** Soonest next tick first; schedules that cannot tick (none next) last. */
export function bySoonest(a: ScheduleView, b: ScheduleView): number {
  const x = a.next_ticks[0] ?? "~";
  const y = b.next_ticks[0] ?? "~";
  return x < y ? -1 : x > y ? 1 : a.launch_plan.localeCompare(b.launch_plan);
}

export function ScheduleTable({ list }: { list: ScheduleView[] }) {
  if (list.length === 0) {
    return (
      <p class="empty">
        No active schedules here. A launch plan's schedule runs once a version of it is activated (its page's{" "}
        <strong>Activate</strong>, or <code>pyflyte register --activate-launchplans</code>).
      </p>
    );
  }
  return (
    <table class="grid" aria-label="Schedules">
      <thead>
        <tr>
          <th scope="col">Launch plan</th>
          <th scope="col">Runs</th>
          <th scope="col">Next tick</th>
          <th scope="col">Last tick</th>
          <th scope="col">Active since</th>
        </tr>
      </thead>
      <tbody>
        {[...list].sort(bySoonest).map((s) => (
          <tr key={s.launch_plan} data-launch-plan={s.launch_plan}>
            <td>
              <a href={paths.entity(s.project, s.domain, "launch_plans", s.launch_plan, s.version)}>
                {s.launch_plan} <span class="muted">@ {s.version}</span>
              </a>
            </td>
            <td>
              {s.schedule}
              {s.time_zone && s.time_zone !== "UTC" ? ` (${s.time_zone})` : ""}
              {s.last_error ? (
                <div class="error-box" role="alert">
                  <strong>The last tick did not launch</strong>
                  <p>{s.last_error}</p>
                </div>
              ) : null}
            </td>
            <td>{s.next_ticks[0] ? <time dateTime={s.next_ticks[0]}>{formatTime(s.next_ticks[0])}</time> : "none"}</td>
            <td>{s.last_tick ? formatTime(s.last_tick) : "none yet"}</td>
            <td>{formatTime(s.active_since)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
