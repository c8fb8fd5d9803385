//! Identifiers: resource types, the validation of project, domain, name and version as
//! flyteadmin performs it at its API edge, a hashable identifier key, and content digests.

use flyteidl::core::Identifier;
use sha2::{Digest, Sha256};

/// The resource types that are registered as immutable, versioned entities.
/// The discriminants are `flyteidl.core.ResourceType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Task = 1,
    Workflow = 2,
    LaunchPlan = 3,
}

impl ResourceType {
    pub fn from_proto(value: i32) -> Option<Self> {
        match value {
            1 => Some(Self::Task),
            2 => Some(Self::Workflow),
            3 => Some(Self::LaunchPlan),
            _ => None,
        }
    }

    /// The lower-case name used in messages and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Workflow => "workflow",
            Self::LaunchPlan => "launch_plan",
        }
    }
}

/// A field of a request that failed validation. The message names the field and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("missing {field}")]
    Missing { field: String },
    #[error("{field} '{value}' is too long: {len} characters, at most {max} are allowed")]
    TooLong {
        field: String,
        value: String,
        len: usize,
        max: usize,
    },
    #[error("{field} '{value}' is invalid: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
}

impl ValidationError {
    /// The name of the offending field (`project`, `domain`, `name`, `version`, `resource_type`…).
    pub fn field(&self) -> &str {
        match self {
            Self::Missing { field } | Self::TooLong { field, .. } | Self::Invalid { field, .. } => {
                field
            }
        }
    }
}

/// Project ids are DNS-1123 labels in flyteadmin (they become Kubernetes namespaces).
pub const MAX_PROJECT_LEN: usize = 63;
/// Domains are combined with projects into namespaces, so the same bound applies.
pub const MAX_DOMAIN_LEN: usize = 63;
/// Entity names are fully qualified Python paths; the bound protects storage and URLs.
pub const MAX_NAME_LEN: usize = 255;
pub const MAX_VERSION_LEN: usize = 255;

pub fn validate_project(project: &str) -> Result<(), ValidationError> {
    non_empty("project", project)?;
    max_len("project", project, MAX_PROJECT_LEN)?;
    dns1123_label("project", project)
}

pub fn validate_domain(domain: &str) -> Result<(), ValidationError> {
    non_empty("domain", domain)?;
    max_len("domain", domain, MAX_DOMAIN_LEN)?;
    dns1123_label("domain", domain)
}

/// Names are free-form in Flyte (`my.module.wf`, `.flytegen.my.module.t`), but they are a path
/// segment of the REST routes, so `/`, whitespace and control characters are refused.
pub fn validate_name(name: &str) -> Result<(), ValidationError> {
    non_empty("name", name)?;
    max_len("name", name, MAX_NAME_LEN)?;
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            "name",
            name,
            format!("it contains {c:?}; '/', whitespace and control characters are not allowed"),
        ));
    }
    Ok(())
}

/// flyteadmin requires versions to be URL-safe: unchanged by query escaping, i.e. only
/// ASCII letters, digits and `-_.~`. We also accept `=`, base64's padding: it is safe in the
/// path segments versions are used in, and `pyflyte backfill` derives its default version
/// with it (flyteadmin refuses that version, so backfill there needs `--version`).
pub fn validate_version(version: &str) -> Result<(), ValidationError> {
    non_empty("version", version)?;
    max_len("version", version, MAX_VERSION_LEN)?;
    if let Some(c) = version
        .chars()
        .find(|c| !is_url_unreserved(*c) && *c != '=')
    {
        return Err(invalid(
            "version",
            version,
            format!(
                "it contains {c:?}; a version must be URL safe \
                 (letters, digits and '-', '_', '.', '~', '=' only)"
            ),
        ));
    }
    Ok(())
}

/// Validates the four parts of a versioned identifier, reporting the first bad field.
pub fn validate_identifier(
    project: &str,
    domain: &str,
    name: &str,
    version: &str,
) -> Result<(), ValidationError> {
    validate_project(project)?;
    validate_domain(domain)?;
    validate_name(name)?;
    validate_version(version)
}

/// Validates a `NamedEntityIdentifier`-shaped triple (no version).
pub fn validate_named_entity(
    project: &str,
    domain: &str,
    name: &str,
) -> Result<(), ValidationError> {
    validate_project(project)?;
    validate_domain(domain)?;
    validate_name(name)
}

/// Validates a `core.Identifier` and that its resource type is the expected one.
pub fn validate_core_identifier(
    id: Option<&Identifier>,
    expected: ResourceType,
) -> Result<(), ValidationError> {
    let id = id.ok_or_else(|| ValidationError::Missing { field: "id".into() })?;
    if ResourceType::from_proto(id.resource_type) != Some(expected) {
        return Err(invalid(
            "resource_type",
            &resource_type_name(id.resource_type),
            format!("expected {}", expected.as_str()),
        ));
    }
    validate_identifier(&id.project, &id.domain, &id.name, &id.version)
}

/// A hashable, ordered key for a `core.Identifier` (`org` is not part of Flyte-RS's keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdKey {
    /// The raw `flyteidl.core.ResourceType` value.
    pub resource: i32,
    pub project: String,
    pub domain: String,
    pub name: String,
    pub version: String,
}

impl From<&Identifier> for IdKey {
    fn from(id: &Identifier) -> Self {
        Self {
            resource: id.resource_type,
            project: id.project.clone(),
            domain: id.domain.clone(),
            name: id.name.clone(),
            version: id.version.clone(),
        }
    }
}

impl IdKey {
    pub fn to_identifier(&self) -> Identifier {
        Identifier {
            resource_type: self.resource,
            project: self.project.clone(),
            domain: self.domain.clone(),
            name: self.name.clone(),
            version: self.version.clone(),
            ..Default::default()
        }
    }
}

impl std::fmt::Display for IdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{}/{}@{}",
            resource_type_name(self.resource),
            self.project,
            self.domain,
            self.name,
            self.version
        )
    }
}

/// Renders an identifier for messages: `task flytesnacks/development/wf.t@v1`.
pub fn display_identifier(id: &Identifier) -> String {
    IdKey::from(id).to_string()
}

/// SHA-256 of `bytes`: the content digest used for idempotent registration.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 of `bytes` as lower-case hex.
pub fn digest_hex(bytes: &[u8]) -> String {
    digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn resource_type_name(value: i32) -> String {
    ResourceType::from_proto(value)
        .map(|r| r.as_str().to_string())
        .unwrap_or_else(|| match value {
            0 => "unspecified".to_string(),
            4 => "dataset".to_string(),
            other => format!("resource type {other}"),
        })
}

fn is_url_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~')
}

fn non_empty(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::Missing {
            field: field.into(),
        });
    }
    Ok(())
}

fn max_len(field: &str, value: &str, max: usize) -> Result<(), ValidationError> {
    let len = value.chars().count();
    if len > max {
        return Err(ValidationError::TooLong {
            field: field.into(),
            value: value.into(),
            len,
            max,
        });
    }
    Ok(())
}

/// RFC 1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric.
fn dns1123_label(field: &str, value: &str) -> Result<(), ValidationError> {
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let ok_ends = !value.starts_with('-') && !value.ends_with('-');
    if ok_chars && ok_ends {
        return Ok(());
    }
    Err(invalid(
        field,
        value,
        "it must consist of lower case letters, digits and '-', and start and end with a letter or digit"
            .to_string(),
    ))
}

fn invalid(field: &str, value: &str, reason: String) -> ValidationError {
    ValidationError::Invalid {
        field: field.into(),
        value: value.into(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_identifier() {
        assert_eq!(
            validate_identifier("flytesnacks", "development", "my.module.wf", "v1_a-B.~"),
            Ok(())
        );
        assert_eq!(validate_name(".flytegen.my.module.t"), Ok(()));
    }

    #[test]
    fn missing_fields_are_named() {
        let err = validate_identifier("", "development", "n", "v").unwrap_err();
        assert_eq!(err.field(), "project");
        assert_eq!(err.to_string(), "missing project");
        assert_eq!(
            validate_identifier("p", "", "n", "v").unwrap_err().field(),
            "domain"
        );
        assert_eq!(
            validate_identifier("p", "d", "", "v").unwrap_err().field(),
            "name"
        );
        assert_eq!(
            validate_identifier("p", "d", "n", "").unwrap_err().field(),
            "version"
        );
    }

    #[test]
    fn project_must_be_dns_label() {
        for bad in ["Flytesnacks", "-a", "a-", "a_b", "a.b"] {
            let err = validate_project(bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        let long = "a".repeat(MAX_PROJECT_LEN + 1);
        assert!(matches!(
            validate_project(&long),
            Err(ValidationError::TooLong { .. })
        ));
    }

    #[test]
    fn names_refuse_slashes_and_whitespace() {
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name("a\u{0}").is_err());
        assert!(validate_name(&"n".repeat(MAX_NAME_LEN + 1)).is_err());
    }

    #[test]
    fn versions_must_be_url_safe() {
        for bad in ["v 1", "v/1", "v?1", "v+1", "v%1", "v:1"] {
            let err = validate_version(bad).unwrap_err();
            assert_eq!(err.field(), "version");
            assert!(err.to_string().contains("URL safe"), "{err}");
        }
        // base64 padding, as `pyflyte backfill` versions end.
        assert!(validate_version("Q0DRmuWgqCMaR1iOOwmxWQ==").is_ok());
    }

    #[test]
    fn core_identifier_checks_resource_type() {
        let id = Identifier {
            resource_type: 1,
            project: "p".into(),
            domain: "d".into(),
            name: "n".into(),
            version: "v".into(),
            ..Default::default()
        };
        assert_eq!(
            validate_core_identifier(Some(&id), ResourceType::Task),
            Ok(())
        );
        let err = validate_core_identifier(Some(&id), ResourceType::Workflow).unwrap_err();
        assert_eq!(err.field(), "resource_type");
        assert!(validate_core_identifier(None, ResourceType::Task).is_err());
    }

    #[test]
    fn id_key_round_trips_and_displays() {
        let id = Identifier {
            resource_type: 2,
            project: "p".into(),
            domain: "d".into(),
            name: "wf".into(),
            version: "v1".into(),
            ..Default::default()
        };
        let key = IdKey::from(&id);
        assert_eq!(key.to_identifier(), id);
        assert_eq!(key.to_string(), "workflow p/d/wf@v1");
    }

    #[test]
    fn sha256_digest() {
        assert_eq!(
            digest_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest(b"").len(), 32);
    }
}
