// The console's only API: the REST gateway under /api/v1/ (what flyteconsole uses too).
import type {
  CompiledWorkflowClosure,
  DataResponse,
  DescriptionEntity,
  Execution,
  ExecutionId,
  ExecutionList,
  Identifier,
  LaunchPlan,
  Literal,
  LiteralMap,
  NamedEntityIdentifier,
  NodeExecution,
  Project,
  ScheduleView,
  Signal,
  Task,
  TaskExecution,
  Workflow,
} from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const seg = encodeURIComponent;

/** The session's CSRF token (auth on: the server sets the readable `flyte_csrf` cookie at
 * login and refuses state-changing calls by session cookie without it in `x-csrf-token`). */
function csrfHeader(method: string): Record<string, string> {
  if (method === "GET" || typeof document === "undefined") return {};
  const m = document.cookie.match(/(?:^|;\s*)flyte_csrf=([^;]+)/);
  return m ? { "x-csrf-token": m[1] } : {};
}

/** Sends the browser to the login, to come back to this page (the session ended). */
export function login(): void {
  window.location.assign(`/login?redirect_url=${encodeURIComponent(window.location.pathname + window.location.search)}`);
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`/api/v1/${path}`, {
      method,
      headers: {
        Accept: "application/json",
        ...(body ? { "Content-Type": "application/json" } : {}),
        ...csrfHeader(method),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (e) {
    throw new ApiError(0, `The server cannot be reached (${(e as Error).message}).`);
  }
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : {};
  } catch {
    // A proxy's HTML error page, say: reported below with the status.
  }
  if (res.status === 401 && typeof window !== "undefined") login();
  if (!res.ok) {
    const message = (json as { message?: string } | undefined)?.message ?? `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, message);
  }
  return json as T;
}

export const get = <T>(path: string) => call<T>("GET", path);

export interface ListOptions {
  limit?: number;
  token?: string;
  filters?: string;
  sortKey?: string;
  descending?: boolean;
}

function listQuery(o: ListOptions): string {
  const q = new URLSearchParams();
  q.set("limit", String(o.limit ?? 100));
  if (o.token) q.set("token", o.token);
  if (o.filters) q.set("filters", o.filters);
  if (o.sortKey) {
    q.set("sort_by.key", o.sortKey);
    q.set("sort_by.direction", o.descending === false ? "ASCENDING" : "DESCENDING");
  }
  return q.toString();
}

const pd = (project: string, domain: string) => `${seg(project)}/${seg(domain)}`;
const exPath = (id: ExecutionId) => `${pd(id.project, id.domain)}/${seg(id.name)}`;

export const api = {
  projects: () => get<{ projects: Project[] }>("projects?limit=100"),
  executions: (project: string, domain: string, o: ListOptions) =>
    get<ExecutionList>(`executions/${pd(project, domain)}?${listQuery(o)}`),
  execution: (id: ExecutionId) => get<Execution>(`executions/${exPath(id)}`),
  executionData: (id: ExecutionId) => get<DataResponse>(`data/executions/${exPath(id)}`),
  nodeExecutions: (id: ExecutionId, parent?: string) =>
    get<{ node_executions: NodeExecution[]; token: string }>(
      `node_executions/${exPath(id)}?limit=10000${parent ? `&unique_parent_id=${seg(parent)}` : ""}`,
    ),
  /** One page of a node's children (`token` from the previous page; "" when none is left). */
  childPage: (id: ExecutionId, parent: string, limit: number, token: string) =>
    get<{ node_executions: NodeExecution[]; token: string }>(
      `node_executions/${exPath(id)}?limit=${limit}&unique_parent_id=${seg(parent)}${token ? `&token=${seg(token)}` : ""}`,
    ),
  /** The workflow a dynamic node built (NodeExecutionService.GetDynamicNodeWorkflow). */
  dynamicWorkflow: (id: ExecutionId, nodeId: string) =>
    get<{ compiled_workflow?: CompiledWorkflowClosure | null }>(`node_executions/${exPath(id)}/${seg(nodeId)}/dynamic_workflow`),
  nodeExecution: (id: ExecutionId, nodeId: string) => get<NodeExecution>(`node_executions/${exPath(id)}/${seg(nodeId)}`),
  nodeData: (id: ExecutionId, nodeId: string) =>
    get<DataResponse>(`data/node_executions/${exPath(id)}/${seg(nodeId)}`),
  taskExecutions: (id: ExecutionId, nodeId: string) =>
    get<{ task_executions: TaskExecution[] }>(`task_executions/${exPath(id)}/${seg(nodeId)}?limit=100`),
  terminate: (id: ExecutionId, cause: string) =>
    call<unknown>("DELETE", `executions/${exPath(id)}`, { id, cause }),
  recover: (id: ExecutionId) => call<{ id: ExecutionId }>("POST", "executions/recover", { id, name: "" }),
  relaunch: (id: ExecutionId) => call<{ id: ExecutionId }>("POST", "executions/relaunch", { id, name: "" }),
  /** A launch plan's execution, or a task's on its own (`kind` TASK: flyteadmin's single-task execution). */
  launch: (target: Identifier, inputs: LiteralMap, kind: "LAUNCH_PLAN" | "TASK" = "LAUNCH_PLAN") =>
    call<{ id: ExecutionId }>("POST", "executions", {
      project: target.project,
      domain: target.domain,
      name: "",
      spec: { launch_plan: { ...target, resource_type: kind }, metadata: { mode: "MANUAL" } },
      inputs,
    }),
  /** Where to PUT a file (DataProxyService.CreateUploadLocation): `native_url` is what tasks read. */
  uploadLocation: (project: string, domain: string, filenameRoot: string, filename: string) =>
    call<{ signed_url: string; native_url: string; headers?: Record<string, string> }>("POST", "dataproxy/artifact_urn", {
      project,
      domain,
      filename_root: filenameRoot,
      filename,
    }),
  /** A signed link to a node's Flyte Deck (DataProxyService.CreateDownloadLink). */
  deckLink: (id: ExecutionId, nodeId: string) =>
    call<{ signed_url?: string[] }>("POST", "dataproxy/artifact_link", {
      artifact_type: "ARTIFACT_TYPE_DECK",
      node_execution_id: { node_id: nodeId, execution_id: id },
    }),
  signals: (id: ExecutionId) => get<{ signals: Signal[] }>(`signals/${exPath(id)}?limit=100`),
  setSignal: (id: Signal["id"], value: Literal) => call<unknown>("POST", "signals", { id, value }),
  setLaunchPlanState: (id: Identifier, state: "ACTIVE" | "INACTIVE") =>
    call<unknown>("PUT", `launch_plans/${pd(id.project, id.domain)}/${seg(id.name)}/${seg(id.version)}`, {
      id: { ...id, resource_type: "LAUNCH_PLAN" },
      state,
    }),
  /** The active schedules of a project and domain. */
  schedules: (project: string, domain: string) => get<{ schedules: ScheduleView[] }>(`schedules/${pd(project, domain)}`),
  /** A launch plan's active schedule; null when it has none (the server's 404). */
  schedule: (project: string, domain: string, name: string) =>
    get<ScheduleView>(`schedules/${pd(project, domain)}/${seg(name)}`).catch((e: unknown) => {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }),
  /** A task's or workflow's description (DescriptionEntityService via AdminService); null
   * when it was registered without one (the server's 404). */
  description: (kind: "workflows" | "tasks", id: Identifier) =>
    get<DescriptionEntity>(
      `description_entities/${kind === "tasks" ? "TASK" : "WORKFLOW"}/${pd(id.project, id.domain)}/${seg(id.name)}/${seg(id.version)}`,
    ).catch((e: unknown) => {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    }),
  entityIds: (kind: EntityKind, project: string, domain: string) =>
    get<{ entities: NamedEntityIdentifier[]; token: string }>(
      `${ID_ROUTE[kind]}/${pd(project, domain)}?${listQuery({ limit: 200, sortKey: "name", descending: false })}`,
    ),
  versions: <K extends EntityKind>(kind: K, project: string, domain: string, name: string) =>
    get<Record<string, EntityOf[K][]>>(
      `${kind}/${pd(project, domain)}/${seg(name)}?${listQuery({ limit: 50, sortKey: "created_at" })}`,
    ).then((r) => r[kind] ?? []),
  entity: <K extends EntityKind>(kind: K, project: string, domain: string, name: string, version: string) =>
    get<EntityOf[K]>(`${kind}/${pd(project, domain)}/${seg(name)}/${seg(version)}`),
};

export type EntityKind = "workflows" | "tasks" | "launch_plans";
export interface EntityOf {
  workflows: Workflow;
  tasks: Task;
  launch_plans: LaunchPlan;
}
const ID_ROUTE: Record<EntityKind, string> = {
  workflows: "workflow_ids",
  tasks: "task_ids",
  launch_plans: "launch_plan_ids",
};
