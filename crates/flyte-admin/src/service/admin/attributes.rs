//! AdminService matchable attributes: Update/Get/Delete of project, project-domain and
//! workflow attributes and ListMatchableAttributes, converted into
//! [`crate::services::attributes`] commands (the REST gateway reaches them through these).

use flyteidl::admin;
use tonic::Response;

use crate::error::AdminResult;
use crate::services::attributes::{AttributesService, Scope};

pub(super) async fn update_project(
    service: &AttributesService,
    r: admin::ProjectAttributesUpdateRequest,
) -> AdminResult<Response<admin::ProjectAttributesUpdateResponse>> {
    let a = r
        .attributes
        .ok_or_else(|| super::common::missing("attributes"))?;
    service
        .update(Scope::Project { project: a.project }, a.matching_attributes)
        .await?;
    Ok(Response::new(Default::default()))
}

pub(super) async fn get_project(
    service: &AttributesService,
    r: &admin::ProjectAttributesGetRequest,
) -> AdminResult<Response<admin::ProjectAttributesGetResponse>> {
    let scope = Scope::Project {
        project: r.project.clone(),
    };
    let found = service.get(scope, r.resource_type).await?;
    Ok(Response::new(admin::ProjectAttributesGetResponse {
        attributes: Some(admin::ProjectAttributes {
            project: r.project.clone(),
            matching_attributes: Some(found.attributes),
            org: r.org.clone(),
        }),
    }))
}

pub(super) async fn delete_project(
    service: &AttributesService,
    r: &admin::ProjectAttributesDeleteRequest,
) -> AdminResult<Response<admin::ProjectAttributesDeleteResponse>> {
    let scope = Scope::Project {
        project: r.project.clone(),
    };
    service.delete(scope, r.resource_type).await?;
    Ok(Response::new(Default::default()))
}

pub(super) async fn update_project_domain(
    service: &AttributesService,
    r: admin::ProjectDomainAttributesUpdateRequest,
) -> AdminResult<Response<admin::ProjectDomainAttributesUpdateResponse>> {
    let a = r
        .attributes
        .ok_or_else(|| super::common::missing("attributes"))?;
    let scope = Scope::ProjectDomain {
        project: a.project,
        domain: a.domain,
    };
    service.update(scope, a.matching_attributes).await?;
    Ok(Response::new(Default::default()))
}

pub(super) async fn get_project_domain(
    service: &AttributesService,
    r: &admin::ProjectDomainAttributesGetRequest,
) -> AdminResult<Response<admin::ProjectDomainAttributesGetResponse>> {
    let scope = Scope::ProjectDomain {
        project: r.project.clone(),
        domain: r.domain.clone(),
    };
    let found = service.get(scope, r.resource_type).await?;
    Ok(Response::new(admin::ProjectDomainAttributesGetResponse {
        attributes: Some(admin::ProjectDomainAttributes {
            project: found.project,
            domain: found.domain,
            matching_attributes: Some(found.attributes),
            org: r.org.clone(),
        }),
    }))
}

pub(super) async fn delete_project_domain(
    service: &AttributesService,
    r: &admin::ProjectDomainAttributesDeleteRequest,
) -> AdminResult<Response<admin::ProjectDomainAttributesDeleteResponse>> {
    let scope = Scope::ProjectDomain {
        project: r.project.clone(),
        domain: r.domain.clone(),
    };
    service.delete(scope, r.resource_type).await?;
    Ok(Response::new(Default::default()))
}

pub(super) async fn update_workflow(
    service: &AttributesService,
    r: admin::WorkflowAttributesUpdateRequest,
) -> AdminResult<Response<admin::WorkflowAttributesUpdateResponse>> {
    let a = r
        .attributes
        .ok_or_else(|| super::common::missing("attributes"))?;
    let scope = Scope::Workflow {
        project: a.project,
        domain: a.domain,
        workflow: a.workflow,
    };
    service.update(scope, a.matching_attributes).await?;
    Ok(Response::new(Default::default()))
}

pub(super) async fn get_workflow(
    service: &AttributesService,
    r: &admin::WorkflowAttributesGetRequest,
) -> AdminResult<Response<admin::WorkflowAttributesGetResponse>> {
    let scope = Scope::Workflow {
        project: r.project.clone(),
        domain: r.domain.clone(),
        workflow: r.workflow.clone(),
    };
    let found = service.get(scope, r.resource_type).await?;
    Ok(Response::new(admin::WorkflowAttributesGetResponse {
        attributes: Some(admin::WorkflowAttributes {
            project: found.project,
            domain: found.domain,
            workflow: found.workflow,
            matching_attributes: Some(found.attributes),
            org: r.org.clone(),
        }),
    }))
}

pub(super) async fn delete_workflow(
    service: &AttributesService,
    r: &admin::WorkflowAttributesDeleteRequest,
) -> AdminResult<Response<admin::WorkflowAttributesDeleteResponse>> {
    let scope = Scope::Workflow {
        project: r.project.clone(),
        domain: r.domain.clone(),
        workflow: r.workflow.clone(),
    };
    service.delete(scope, r.resource_type).await?;
    Ok(Response::new(Default::default()))
}

pub(super) async fn list(
    service: &AttributesService,
    r: &admin::ListMatchableAttributesRequest,
) -> AdminResult<Response<admin::ListMatchableAttributesResponse>> {
    let configurations = service.list(r.resource_type).await?;
    Ok(Response::new(admin::ListMatchableAttributesResponse {
        configurations,
    }))
}
