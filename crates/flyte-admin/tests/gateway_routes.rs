//! The gateway's route table is generated from the contract's google.api.http rules: every
//! rule of every service is present, and the paths are Flyte's (contract §6).

use flyte_admin::gateway::{BodySpec, descriptor_pool, route_table};
use http::Method;

#[test]
fn every_admin_rpc_with_an_http_rule_has_a_route() {
    let routes = route_table();
    let pool = descriptor_pool();
    let ext = pool
        .get_extension_by_name("google.api.http")
        .expect("google.api.http is in the descriptor set");
    let admin = pool
        .get_service_by_name("flyteidl.service.AdminService")
        .unwrap();
    let with_rules: Vec<String> = admin
        .methods()
        .filter(|m| m.options().has_extension(&ext))
        .map(|m| m.name().to_string())
        .collect();
    assert!(
        with_rules.len() > 40,
        "AdminService has {} http rules",
        with_rules.len()
    );
    for method in &with_rules {
        assert!(
            routes
                .iter()
                .any(|r| r.service == "flyteidl.service.AdminService" && &r.method == method),
            "no route for AdminService.{method}"
        );
    }
    let admin_routes = routes
        .iter()
        .filter(|r| r.service == "flyteidl.service.AdminService")
        .count();
    assert!(
        admin_routes >= with_rules.len(),
        "additional bindings are routes too"
    );
    // Other services with rules are covered too.
    for service in [
        "DataProxyService",
        "SignalService",
        "IdentityService",
        "AuthMetadataService",
    ] {
        let full = format!("flyteidl.service.{service}");
        assert!(
            routes.iter().any(|r| r.service == full),
            "no routes for {service}"
        );
    }
}

fn find(method: Method, template: &str) -> flyte_admin::gateway::Route {
    route_table()
        .into_iter()
        .find(|r| r.http_method == method && r.template == template)
        .unwrap_or_else(|| panic!("no route {method} {template}"))
}

#[test]
fn contract_paths_are_present() {
    let cases: &[(Method, &str, &str)] = &[
        (Method::GET, "/api/v1/projects", "ListProjects"),
        (Method::POST, "/api/v1/projects", "RegisterProject"),
        (Method::PUT, "/api/v1/projects/{id}", "UpdateProject"),
        (Method::GET, "/api/v1/domains", "GetDomains"),
        (Method::POST, "/api/v1/tasks", "CreateTask"),
        (
            Method::GET,
            "/api/v1/tasks/{id.project}/{id.domain}/{id.name}/{id.version}",
            "GetTask",
        ),
        (
            Method::GET,
            "/api/v1/task_ids/{project}/{domain}",
            "ListTaskIds",
        ),
        (Method::POST, "/api/v1/workflows", "CreateWorkflow"),
        (
            Method::GET,
            "/api/v1/workflows/{id.project}/{id.domain}/{id.name}/{id.version}",
            "GetWorkflow",
        ),
        (Method::POST, "/api/v1/launch_plans", "CreateLaunchPlan"),
        (
            Method::PUT,
            "/api/v1/launch_plans/{id.project}/{id.domain}/{id.name}/{id.version}",
            "UpdateLaunchPlan",
        ),
        (
            Method::GET,
            "/api/v1/active_launch_plans/{id.project}/{id.domain}/{id.name}",
            "GetActiveLaunchPlan",
        ),
        (Method::POST, "/api/v1/executions", "CreateExecution"),
        (
            Method::GET,
            "/api/v1/executions/{id.project}/{id.domain}/{id.name}",
            "GetExecution",
        ),
        (Method::GET, "/api/v1/version", "GetVersion"),
        (
            Method::POST,
            "/api/v1/dataproxy/artifact_urn",
            "CreateUploadLocation",
        ),
        (
            Method::POST,
            "/api/v1/dataproxy/artifact_link",
            "CreateDownloadLink",
        ),
    ];
    for (method, template, rpc) in cases {
        let route = find(method.clone(), template);
        assert_eq!(&route.method, rpc, "{method} {template}");
    }
    assert_eq!(find(Method::POST, "/api/v1/tasks").body, BodySpec::All);
    assert_eq!(find(Method::GET, "/api/v1/projects").body, BodySpec::None);
}

#[test]
fn paths_match_to_one_rpc_each() {
    let routes = route_table();
    let resolve = |method: Method, path: &str| {
        routes
            .iter()
            .find(|r| {
                r.http_method == method && r.path.matches(path.trim_start_matches('/')).is_some()
            })
            .map(|r| {
                (
                    r.method.clone(),
                    r.path.matches(path.trim_start_matches('/')).unwrap(),
                )
            })
    };
    let (rpc, captures) = resolve(
        Method::GET,
        "/api/v1/tasks/flytesnacks/development/my.mod.t/v1",
    )
    .unwrap();
    assert_eq!(rpc, "GetTask");
    assert_eq!(captures[2], ("id.name".to_string(), "my.mod.t".to_string()));
    assert_eq!(
        resolve(
            Method::GET,
            "/api/v1/tasks/flytesnacks/development/my.mod.t"
        )
        .unwrap()
        .0,
        "ListTasks"
    );
    assert_eq!(
        resolve(Method::GET, "/api/v1/tasks/flytesnacks/development")
            .unwrap()
            .0,
        "ListTasks"
    );
    assert_eq!(
        resolve(Method::POST, "/api/v1/executions/relaunch")
            .unwrap()
            .0,
        "RelaunchExecution"
    );
    assert_eq!(
        resolve(Method::POST, "/api/v1/executions").unwrap().0,
        "CreateExecution"
    );
    assert_eq!(
        resolve(
            Method::GET,
            "/api/v1/node_executions/p/d/e/n1/dynamic_workflow"
        )
        .unwrap()
        .0,
        "GetDynamicNodeWorkflow"
    );
    assert_eq!(
        resolve(Method::GET, "/api/v1/node_executions/p/d/e/n1")
            .unwrap()
            .0,
        "GetNodeExecution"
    );
    assert!(resolve(Method::GET, "/api/v1/nothing/here").is_none());
}
