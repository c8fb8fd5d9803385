import { useState } from "preact/hooks";
import { api, type EntityKind } from "../api";
import { StaticGraph } from "../components/RunGraph";
import { Description } from "../components/Description";
import { LaunchForm } from "../components/LaunchForm";
import { LiteralTable, VarDescription, VariableTable, ViewNode } from "../components/Literal";
import { LaunchPlanSchedule } from "../components/Schedule";
import { ErrorBox, Loading, Section, useAsync } from "../components/common";
import { formatTime } from "../format";
import { literalView, typeText } from "../literals";
import { paths } from "../router";
import { ScopedExecutions } from "./Executions";
import type { LaunchPlan, Task, Workflow } from "../types";

export const KIND_LABEL: Record<EntityKind, string> = {
  workflows: "Workflows",
  tasks: "Tasks",
  launch_plans: "Launch plans",
};
const ONE: Record<EntityKind, string> = { workflows: "workflow", tasks: "task", launch_plans: "launch plan" };
const TITLE: Record<EntityKind, string> = { workflows: "Workflow", tasks: "Task", launch_plans: "Launch plan" };

export function EntityList({ project, domain, kind }: { project: string; domain: string; kind: EntityKind }) {
  const r = useAsync(() => api.entityIds(kind, project, domain), [project, domain, kind]);
  const list = r.data?.entities ?? [];
  return (
    <main id="main">
      <h1>{KIND_LABEL[kind]}</h1>
      {r.error ? <ErrorBox error={r.error} what={KIND_LABEL[kind].toLowerCase()} /> : null}
      {r.loading && !r.data ? <Loading what={KIND_LABEL[kind].toLowerCase()} /> : null}
      {r.data && list.length === 0 ? (
        <p class="empty">
          No {KIND_LABEL[kind].toLowerCase()} registered in {project}/{domain}. Register with <code>pyflyte register</code>.
        </p>
      ) : null}
      <ul class="name-list" aria-label={KIND_LABEL[kind]}>
        {list.map((e) => (
          <li key={e.name}>
            <a href={paths.versions(project, domain, kind, e.name)}>{e.name}</a>
          </li>
        ))}
      </ul>
    </main>
  );
}

export function Versions({ project, domain, kind, name }: { project: string; domain: string; kind: EntityKind; name: string }) {
  const r = useAsync(() => api.versions(kind, project, domain, name), [project, domain, kind, name]);
  return (
    <main id="main">
      <h1>
        {TITLE[kind]} <span class="mono">{name}</span>
      </h1>
      {r.error ? <ErrorBox error={r.error} what="versions" /> : null}
      {r.loading && !r.data ? <Loading what="versions" /> : null}
      {r.data && r.data.length === 0 ? <p class="empty">No versions of this {ONE[kind]}.</p> : null}
      {r.data && r.data.length > 0 ? (
        <table class="grid" aria-label="Versions">
          <thead>
            <tr>
              <th scope="col">Version</th>
              <th scope="col">Created</th>
              {kind === "launch_plans" ? <th scope="col">State</th> : null}
            </tr>
          </thead>
          <tbody>
            {r.data.map((v) => (
              <tr key={v.id.version}>
                <td>
                  <a href={paths.entity(project, domain, kind, name, v.id.version)}>{v.id.version}</a>
                </td>
                <td>{formatTime(v.closure?.created_at)}</td>
                {kind === "launch_plans" ? <td>{((v as LaunchPlan).closure?.state ?? "–").toLowerCase()}</td> : null}
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {kind === "launch_plans" ? <LaunchPlanSchedule project={project} domain={domain} name={name} /> : null}
    </main>
  );
}

export function EntityPage(props: {
  project: string;
  domain: string;
  kind: EntityKind;
  name: string;
  version: string;
  from?: string | null;
}) {
  const { project, domain, kind, name, version, from } = props;
  const r = useAsync(() => api.entity(kind, project, domain, name, version), [project, domain, kind, name, version]);
  return (
    <main id="main">
      <h1>
        {TITLE[kind]} <span class="mono">{name}</span>
      </h1>
      <p class="muted">
        version <span class="mono">{version}</span> ·{" "}
        <a href={paths.versions(project, domain, kind, name)}>all versions</a>
      </p>
      {r.error ? <ErrorBox error={r.error} what={ONE[kind]} /> : null}
      {r.loading && !r.data ? <Loading what={ONE[kind]} /> : null}
      {r.data && kind === "workflows" ? <WorkflowDetail wf={r.data as Workflow} /> : null}
      {r.data && kind === "tasks" ? <TaskDetail task={r.data as Task} /> : null}
      {r.data && kind === "launch_plans" ? (
        <LaunchPlanDetail lp={r.data as LaunchPlan} onChanged={r.reload} from={from ?? null} />
      ) : null}
    </main>
  );
}

function WorkflowDetail({ wf }: { wf: Workflow }) {
  const primary = wf.closure?.compiled_workflow?.primary;
  const iface = primary?.template.interface;
  return (
    <>
      <Description kind="workflows" id={wf.id} />
      <Interface inputs={iface?.inputs?.variables} outputs={iface?.outputs?.variables} />
      <Section title="Graph" id="wf-graph-h">
        {wf.closure?.compiled_workflow ? <StaticGraph closure={wf.closure.compiled_workflow} /> : <p class="empty">No compiled graph.</p>}
      </Section>
      <section class="card">
        <ScopedExecutions project={wf.id.project} domain={wf.id.domain} filter={`eq(workflow.name,${wf.id.name})`} />
      </section>
    </>
  );
}

function TaskDetail({ task }: { task: Task }) {
  const t = task.closure?.compiled_task?.template;
  return (
    <>
      <p>
        Task type <code>{t?.type ?? "?"}</code>
      </p>
      <Description kind="tasks" id={task.id} />
      <Interface inputs={t?.interface?.inputs?.variables} outputs={t?.interface?.outputs?.variables} />
      <Section title="Launch this task" id="launch-task-h">
        <LaunchForm task={task} />
      </Section>
    </>
  );
}

function LaunchPlanDetail({ lp, onChanged, from }: { lp: LaunchPlan; onChanged: () => void; from: string | null }) {
  // `?from=<execution>`: the form starts with that execution's inputs (relaunch with changes).
  const prior = useAsync(
    () => (from ? api.executionData({ project: lp.id.project, domain: lp.id.domain, name: from }) : Promise.resolve(null)),
    [from],
  );
  const params = Object.entries(lp.spec?.default_inputs?.parameters ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const wf = lp.spec?.workflow_id;
  const schedule = lp.spec?.entity_metadata?.schedule;
  return (
    <>
      <dl class="facts card">
        <dt>State</dt>
        <dd>
          <span data-testid="lp-state">{(lp.closure?.state ?? "–").toLowerCase()}</span>{" "}
          <ActiveToggle lp={lp} onChanged={onChanged} />
        </dd>
        <dt>Workflow</dt>
        <dd>{wf ? <a href={paths.entity(wf.project, wf.domain, "workflows", wf.name, wf.version)}>{wf.name}</a> : "–"}</dd>
        <dt>Schedule</dt>
        <dd>{schedule ? <code>{JSON.stringify(schedule)}</code> : "none"}</dd>
      </dl>
      {wf ? <Description kind="workflows" id={wf} of="its workflow" /> : null}
      {/* Shown when this version is the active scheduled one. */}
      <LaunchPlanSchedule project={lp.id.project} domain={lp.id.domain} name={lp.id.name} version={lp.id.version} />
      <Section title={from ? `Launch with the inputs of ${from}` : "Launch"} id="lp-launch-h">
        {prior.error ? <ErrorBox error={prior.error} what={`the inputs of ${from}`} /> : null}
        {from && prior.loading ? <Loading what="inputs" /> : <LaunchForm key={from ?? ""} lp={lp} initial={prior.data?.full_inputs} />}
      </Section>
      <Section title="Inputs" id="lp-inputs-h">
        {params.length === 0 ? (
          <p class="empty">No inputs.</p>
        ) : (
          <table class="literals" aria-label="Launch plan inputs">
            <tbody>
              {params.map(([n, p]) => (
                <tr key={n}>
                  <th scope="row">
                    {n} <span class="type">{typeText(p.var.type)}</span>
                    <VarDescription name={n} v={p.var} />
                  </th>
                  <td>
                    {p.required ? <span class="muted">required</span> : null}
                    {p.default ? (
                      <>
                        <span class="muted">default </span>
                        <ViewNode v={literalView(p.default)} />
                      </>
                    ) : null}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Section title="Fixed inputs" id="lp-fixed-h">
        <LiteralTable map={lp.spec?.fixed_inputs} empty="No fixed inputs." label="Fixed inputs" />
      </Section>
      <Section title="Outputs" id="lp-outputs-h">
        <VariableTable vars={lp.closure?.expected_outputs?.variables} empty="No outputs." label="Outputs" />
      </Section>
      <section class="card">
        <ScopedExecutions project={lp.id.project} domain={lp.id.domain} filter={`eq(launch_plan.name,${lp.id.name})`} />
      </section>
    </>
  );
}

function Interface({ inputs, outputs }: { inputs?: Record<string, import("../types").Variable>; outputs?: Record<string, import("../types").Variable> }) {
  return (
    <div class="two-col">
      <Section title="Inputs" id="if-inputs-h">
        <VariableTable vars={inputs} empty="No inputs." label="Interface inputs" />
      </Section>
      <Section title="Outputs" id="if-outputs-h">
        <VariableTable vars={outputs} empty="No outputs." label="Interface outputs" />
      </Section>
    </div>
  );
}

/** Activate or deactivate a launch plan version (one active version per name: activating
 * this one deactivates the others, as flyteadmin does). */
function ActiveToggle({ lp, onChanged }: { lp: LaunchPlan; onChanged: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const active = lp.closure?.state === "ACTIVE";
  const toggle = async () => {
    setBusy(true);
    setError(null);
    try {
      await api.setLaunchPlanState(lp.id, active ? "INACTIVE" : "ACTIVE");
      onChanged();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" disabled={busy} onClick={toggle}>
        {active ? "Deactivate" : "Activate"}
      </button>
      {error ? <ErrorBox error={error} what="the launch plan's state" /> : null}
    </>
  );
}
