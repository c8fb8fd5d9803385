//! Fields this build does not know survive registration and come back on reads, over a real
//! gRPC server behind the fidelity layer; oversized requests are refused.

mod admin_support;

use admin_support::*;
use flyte_admin::AdminConfig;
use flyte_admin::fidelity::sub_message;
use flyteidl::admin::{LaunchPlan, ResourceListRequest, Task, TaskList, Workflow};
use flyteidl::core::ResourceType;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};

const FUTURE: &[u8] = b"field-from-a-newer-flytekit";

/// A length-delimited field.
fn ld(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_key(tag, WireType::LengthDelimited, &mut out);
    encode_varint(value.len() as u64, &mut out);
    out.extend_from_slice(value);
    out
}

/// `message` with the unknown field 999 appended.
fn with_future(message: &[u8]) -> Vec<u8> {
    let mut out = message.to_vec();
    out.extend(ld(999, FUTURE));
    out
}

fn contains_future(bytes: &[u8]) -> bool {
    bytes.windows(FUTURE.len()).any(|w| w == FUTURE)
}

/// A CreateTask request whose `spec.template` carries the unknown field.
fn task_request_bytes(name: &str, version: &str) -> Vec<u8> {
    let typed = task_request(name, version);
    let template = with_future(
        &typed
            .spec
            .as_ref()
            .unwrap()
            .template
            .as_ref()
            .unwrap()
            .encode_to_vec(),
    );
    let description = typed
        .spec
        .as_ref()
        .unwrap()
        .description
        .as_ref()
        .unwrap()
        .encode_to_vec();
    let spec = [ld(1, &template), ld(2, &description)].concat();
    [ld(1, &typed.id.unwrap().encode_to_vec()), ld(2, &spec)].concat()
}

#[tokio::test]
async fn unknown_template_field_round_trips_through_get_list_and_workflow_closure() {
    let server = start().await;
    let mut raw = server.raw().await;
    raw.call("CreateTask", task_request_bytes("t", "v1"))
        .await
        .unwrap();
    let task_id = id(ResourceType::Task, "t", "v1");

    // GetTask: Task.closure(2).compiled_task(1).template(1) holds the unknown field.
    let bytes = raw
        .call("GetTask", get(&task_id).encode_to_vec())
        .await
        .unwrap();
    let template = sub_message(&bytes, &[2, 1, 1]).unwrap();
    assert!(contains_future(&template));
    let task = Task::decode(bytes).unwrap();
    let typed_template = task
        .closure
        .unwrap()
        .compiled_task
        .unwrap()
        .template
        .unwrap();
    assert_eq!(typed_template, task_template("t", "v1", "img:1"));
    assert_eq!(task.short_description, "the t task");

    // ListTasks: every element is spliced the same way.
    let request = ResourceListRequest {
        id: Some(flyteidl::admin::NamedEntityIdentifier {
            project: PROJECT.into(),
            domain: DOMAIN.into(),
            name: "t".into(),
            ..Default::default()
        }),
        limit: 5,
        ..Default::default()
    };
    let bytes = raw
        .call("ListTasks", request.encode_to_vec())
        .await
        .unwrap();
    assert!(contains_future(
        &sub_message(&bytes, &[1, 2, 1, 1]).unwrap()
    ));
    let list = TaskList::decode(bytes).unwrap();
    assert_eq!(list.tasks.len(), 1);

    // GetWorkflow: the compiled closure embeds the task template as the client sent it.
    let mut client = server.client.clone();
    let wf = workflow_request("wf", "v1", &task_id, "n0");
    let wf_id = wf.id.clone().unwrap();
    client.create_workflow(wf).await.unwrap();
    let bytes = raw
        .call("GetWorkflow", get(&wf_id).encode_to_vec())
        .await
        .unwrap();
    // Workflow.closure(2).compiled_workflow(1).tasks(3).template(1)
    assert!(contains_future(
        &sub_message(&bytes, &[2, 1, 3, 1]).unwrap()
    ));
    let workflow = Workflow::decode(bytes).unwrap();
    let compiled = workflow.closure.unwrap().compiled_workflow.unwrap();
    assert_eq!(compiled.tasks.len(), 1);
    assert_eq!(
        compiled.tasks[0].template.as_ref().unwrap(),
        &typed_template
    );

    // The typed client still reads the same entity.
    let typed = client.get_task(get(&task_id)).await.unwrap().into_inner();
    assert_eq!(
        typed
            .closure
            .unwrap()
            .compiled_task
            .unwrap()
            .template
            .unwrap(),
        typed_template
    );
}

#[tokio::test]
async fn unknown_launch_plan_spec_field_round_trips() {
    let server = start().await;
    let mut client = server.client.clone();
    let (_, wf_id, _) = register_all(&mut client, "v1").await;
    let typed = launch_plan_request("lp", "v1", &wf_id);
    let lp_id = typed.id.clone().unwrap();
    let spec = with_future(&typed.spec.unwrap().encode_to_vec());
    let request = [ld(1, &lp_id.encode_to_vec()), ld(2, &spec)].concat();
    let mut raw = server.raw().await;
    raw.call("CreateLaunchPlan", request.clone()).await.unwrap();

    let bytes = raw
        .call("GetLaunchPlan", get(&lp_id).encode_to_vec())
        .await
        .unwrap();
    assert!(contains_future(&sub_message(&bytes, &[2]).unwrap()));
    let lp = LaunchPlan::decode(bytes).unwrap();
    assert_eq!(lp.spec.unwrap().workflow_id.as_ref(), Some(&wf_id));
    assert_eq!(lp.closure.unwrap().state, 0);

    // Identical content with the unknown field is still "identical".
    let err = raw.call("CreateLaunchPlan", request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::AlreadyExists);
}

#[tokio::test]
async fn oversized_requests_are_resource_exhausted_and_not_stored() {
    let server = start_with(AdminConfig {
        max_request_bytes: 4096,
        ..Default::default()
    })
    .await;
    let mut client = server.client.clone();
    let mut request = task_request("big", "v1");
    let template = request.spec.as_mut().unwrap().template.as_mut().unwrap();
    template.target = Some(flyteidl::core::task_template::Target::Container(
        flyteidl::core::Container {
            image: "x".repeat(10_000),
            ..Default::default()
        },
    ));
    let err = client.create_task(request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("max_request_bytes"),
        "{}",
        err.message()
    );
    let err = client
        .get_task(get(&id(ResourceType::Task, "big", "v1")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn in_process_calls_without_the_layer_work() {
    use flyte_admin::service::admin::AdminApi;
    use flyteidl::service::admin_service_server::AdminService;

    let server = start().await;
    let api = AdminApi::new(server.state.clone());
    api.create_task(tonic::Request::new(task_request("t", "v1")))
        .await
        .unwrap();
    let task = api
        .get_task(tonic::Request::new(get(&id(ResourceType::Task, "t", "v1"))))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        task.closure
            .unwrap()
            .compiled_task
            .unwrap()
            .template
            .unwrap(),
        task_template("t", "v1", "img:1")
    );
}
