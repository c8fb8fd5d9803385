// The REST gateway's JSON shapes (proto field names, as `Accept: application/json` returns
// them: int64 as strings, enums as names, durations as "1.5s", timestamps as RFC 3339). Only
// the fields the console reads are declared.

export interface Identifier {
  resource_type?: string;
  project: string;
  domain: string;
  name: string;
  version: string;
  org?: string;
}

export interface ExecutionId {
  project: string;
  domain: string;
  name: string;
  org?: string;
}

export interface ExecutionError {
  code?: string;
  message?: string;
  kind?: string;
  error_uri?: string;
}

export interface Execution {
  id: ExecutionId;
  spec: {
    launch_plan?: Identifier | null;
    metadata?: {
      mode?: string;
      principal?: string;
      nesting?: number;
      reference_execution?: ExecutionId | null;
      parent_node_execution?: { execution_id: ExecutionId; node_id: string } | null;
      scheduled_at?: string | null;
    } | null;
    tags?: string[];
  };
  closure: {
    phase: string;
    started_at?: string | null;
    created_at?: string | null;
    updated_at?: string | null;
    duration?: string | null;
    error?: ExecutionError | null;
    abort_metadata?: { cause?: string; principal?: string } | null;
    workflow_id?: Identifier | null;
  };
}

export interface ExecutionList {
  executions: Execution[];
  token: string;
}

export interface Scalar {
  primitive?: {
    integer?: string | number;
    float_value?: number | string;
    string_value?: string;
    boolean?: boolean;
    datetime?: string;
    duration?: string;
  };
  blob?: { uri: string; metadata?: { type?: { format?: string; dimensionality?: string } } };
  binary?: { value: string; tag: string };
  schema?: { uri: string };
  none_type?: object;
  error?: { failed_node_id?: string; message?: string };
  generic?: unknown;
  structured_dataset?: {
    uri: string;
    metadata?: { structured_dataset_type?: { format?: string; columns?: { name: string }[] } };
  };
  union?: { value: Literal; type?: LiteralType };
}

export interface Literal {
  scalar?: Scalar | null;
  collection?: { literals: Literal[] } | null;
  map?: { literals: Record<string, Literal> } | null;
  offloaded_metadata?: { uri: string; size_bytes?: string; inferred_type?: LiteralType } | null;
}

export interface LiteralMap {
  literals: Record<string, Literal>;
}

export interface LiteralType {
  simple?: string;
  schema?: unknown;
  collection_type?: LiteralType;
  map_value_type?: LiteralType;
  blob?: { format?: string; dimensionality?: string };
  enum_type?: { values: string[] };
  structured_dataset_type?: { format?: string; columns?: { name: string }[] };
  union_type?: { variants: LiteralType[] };
  metadata?: unknown;
  structure?: { tag?: string } | null;
}

export interface Variable {
  type: LiteralType;
  description?: string;
}

export interface TypedInterface {
  inputs?: { variables: Record<string, Variable> } | null;
  outputs?: { variables: Record<string, Variable> } | null;
}

export interface DataResponse {
  full_inputs?: LiteralMap | null;
  full_outputs?: LiteralMap | null;
}

export interface NodeExecution {
  id: { execution_id: ExecutionId; node_id: string };
  input_uri?: string;
  closure: {
    phase: string;
    started_at?: string | null;
    created_at?: string | null;
    updated_at?: string | null;
    duration?: string | null;
    error?: ExecutionError | null;
    output_uri?: string;
    task_node_metadata?: {
      cache_status?: string;
      catalog_key?: { dataset_id?: { name?: string } | null } | null;
    } | null;
    /** `executionId`: the proto field is spelled so (admin.WorkflowNodeMetadata). */
    workflow_node_metadata?: { executionId?: ExecutionId } | null;
    /** Where the node's Flyte Deck (HTML) was written, if its task made one. */
    deck_uri?: string;
  };
  metadata?: {
    spec_node_id?: string;
    is_parent_node?: boolean;
    is_dynamic?: boolean;
    is_array?: boolean;
    retry_group?: string;
  } | null;
}

export interface TaskExecution {
  id: { retry_attempt?: number; task_id: Identifier };
  closure: {
    phase: string;
    started_at?: string | null;
    duration?: string | null;
    error?: ExecutionError | null;
    logs?: { uri: string; name: string }[];
    reason?: string;
    /** Map tasks: one entry per index (the array node's sub-tasks). */
    metadata?: { external_resources?: ExternalResource[] | null } | null;
  };
}

export interface ExternalResource {
  external_id?: string;
  index?: number;
  retry_attempt?: number;
  phase?: string;
  cache_status?: string;
  logs?: { uri: string; name: string }[];
}

export interface NamedEntityIdentifier {
  project: string;
  domain: string;
  name: string;
}

export interface Connections {
  upstream?: Record<string, { ids: string[] }>;
  downstream?: Record<string, { ids: string[] }>;
}

export interface WorkflowNode {
  id: string;
  metadata?: { name?: string } | null;
  task_node?: { reference_id?: Identifier } | null;
  workflow_node?: { launchplan_ref?: Identifier; sub_workflow_ref?: Identifier } | null;
  /** The nodes a branch may run (`if_else`: case, other cases, else). */
  branch_node?: {
    if_else?: {
      case?: { then_node?: WorkflowNode } | null;
      other?: { then_node?: WorkflowNode }[] | null;
      else_node?: WorkflowNode | null;
    } | null;
  } | null;
  gate_node?: unknown;
  array_node?: unknown;
}

export interface CompiledWorkflow {
  template: { id: Identifier; nodes: WorkflowNode[]; interface?: TypedInterface | null };
  connections?: Connections | null;
}

/** `core.CompiledWorkflowClosure`: a workflow with the subworkflows its nodes refer to. */
export interface CompiledWorkflowClosure {
  primary: CompiledWorkflow;
  sub_workflows?: CompiledWorkflow[] | null;
}

export interface Workflow {
  id: Identifier;
  closure?: {
    created_at?: string;
    compiled_workflow?: CompiledWorkflowClosure | null;
  } | null;
  short_description?: string;
}

export interface Task {
  id: Identifier;
  closure?: {
    created_at?: string;
    compiled_task?: {
      template?: { type?: string; interface?: TypedInterface | null; metadata?: unknown } | null;
    } | null;
  } | null;
  short_description?: string;
}

export interface Parameter {
  var: Variable;
  default?: Literal | null;
  required?: boolean;
}

export interface LaunchPlan {
  id: Identifier;
  spec?: {
    workflow_id?: Identifier;
    default_inputs?: { parameters: Record<string, Parameter> } | null;
    fixed_inputs?: LiteralMap | null;
    entity_metadata?: { schedule?: Record<string, unknown> | null } | null;
  } | null;
  closure?: {
    state?: string;
    created_at?: string;
    expected_outputs?: { variables: Record<string, Variable> } | null;
  } | null;
}

/** `admin.DescriptionEntity`: a task's or workflow's documentation (its docstring). */
export interface DescriptionEntity {
  id?: Identifier;
  short_description?: string;
  long_description?: { value?: string; uri?: string; format?: string; icon_link?: string } | null;
  source_code?: { link?: string } | null;
  tags?: string[];
}

export interface Project {
  id: string;
  name: string;
  description?: string;
  domains: { id: string; name: string }[];
}

export interface Signal {
  id: { execution_id: ExecutionId; signal_id: string };
  type: LiteralType;
  value?: Literal | null;
}

/** A launch plan's active schedule, as `GET /api/v1/schedules/{p}/{d}/{name}` returns it. */
export interface ScheduleView {
  project: string;
  domain: string;
  launch_plan: string;
  version: string;
  /** As a person reads it: `every 1 minute`, `cron "0 9 * * MON-FRI"`. */
  schedule: string;
  kickoff_time_input_arg: string;
  time_zone: string;
  active_since: string;
  last_tick?: string | null;
  last_error: string;
  next_ticks: string[];
}
