//! Authorization: what an authenticated caller may do, per project and domain
//! (docs/auth.md, docs/adr-010-authorization.md).
//!
//! Roles are fixed sets of [`Permission`]s; configuration binds users (by subject or email)
//! and groups (from a configurable claim) to a role on a project (`*`: every project) and
//! optionally one domain, and names platform admins. [`Authorizer::check`] answers whether
//! an [`Identity`] holds a permission on a project/domain. Nothing here knows about gRPC:
//! which call needs what is flyte-admin's table.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Identity;

/// What a call needs. Roles are sets of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// See entities, executions, their data and logs.
    Read,
    /// Launch, relaunch, recover, terminate executions; signals; uploads for a run.
    Execute,
    /// Register tasks, workflows, launch plans; activate launch plans.
    Register,
    /// Change a project's settings (attributes, description, archive).
    AdminProject,
    /// Create projects and calls that name no project (platform-wide).
    AdminPlatform,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Execute => "execute",
            Self::Register => "register",
            Self::AdminProject => "admin-project",
            Self::AdminPlatform => "admin-platform",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role on a project (and domain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Viewer,
    Executor,
    Registrant,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Self::Viewer, Self::Executor, Self::Registrant, Self::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Executor => "executor",
            Self::Registrant => "registrant",
            Self::Admin => "admin",
        }
    }

    /// The role named `name` (`viewer`, `executor`, `registrant`, `admin`).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The permissions of the role. A registrant may also run: `pyflyte run --remote`
    /// registers and launches in one go.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Self::Viewer => &[Read],
            Self::Executor => &[Read, Execute],
            Self::Registrant => &[Read, Execute, Register],
            Self::Admin => &[Read, Execute, Register, AdminProject],
        }
    }
}

/// One binding: a user or group has a role on a project (and domain).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// A user: the token's `sub` or its `email`. Exactly one of `user` and `group`.
    #[serde(default)]
    pub user: Option<String>,
    /// A group, as listed in the token's groups claim (`auth.authorization.groups_claim`).
    #[serde(default)]
    pub group: Option<String>,
    pub role: Role,
    /// A project name, or `*` for every project.
    pub project: String,
    /// One domain of the project; unset: every domain.
    #[serde(default)]
    pub domain: Option<String>,
}

/// The `auth.authorization` section (docs/auth.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// Check every call against the bindings. Off: any authenticated caller may do anything.
    pub enabled: bool,
    /// The claim of the access token listing the caller's groups.
    pub groups_claim: String,
    /// Users (subject or email) and groups with every permission on every project,
    /// `admin-platform` included, as `user:NAME` or `group:NAME`.
    pub platform_admins: Vec<String>,
    pub bindings: Vec<Binding>,
    /// Bindings made over the API (`/api/v1/auth/bindings`) are read from the store again this
    /// often, so a change made through another replica applies here within this time.
    pub reload_secs: u64,
}

impl Default for AuthorizationConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            groups_claim: "groups".into(),
            platform_admins: Vec::new(),
            bindings: Vec::new(),
            reload_secs: 5,
        }
    }
}

impl AuthorizationConfig {
    /// What is wrong with the section, naming the key.
    pub fn validate(&self, auth_enabled: bool) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if !auth_enabled {
            return Err(
                "auth.authorization.enabled: authorization needs authentication \
                        (auth.enabled) to know who is calling"
                    .into(),
            );
        }
        if self.groups_claim.trim().is_empty() {
            return Err("auth.authorization.groups_claim: empty".into());
        }
        for (i, b) in self.bindings.iter().enumerate() {
            let key = format!("auth.authorization.bindings[{i}]");
            match (&b.user, &b.group) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => return Err(format!("{key}: set exactly one of `user` and `group`")),
            }
            if b.project.trim().is_empty() {
                return Err(format!("{key}.project: empty (a project name, or `*`)"));
            }
        }
        for (i, p) in self.platform_admins.iter().enumerate() {
            if !(p.starts_with("user:") || p.starts_with("group:")) {
                return Err(format!(
                    "auth.authorization.platform_admins[{i}]: `{p}` is neither `user:NAME` \
                     nor `group:NAME`"
                ));
            }
        }
        Ok(())
    }
}

/// Where a permission is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A project, and a domain if the call names one.
    Project {
        project: &'a str,
        domain: Option<&'a str>,
    },
    /// The whole platform: only a binding on `*` or a platform admin grants it.
    Platform,
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Project {
                project,
                domain: Some(d),
            } => write!(f, "project `{project}`, domain `{d}`"),
            Self::Project {
                project,
                domain: None,
            } => write!(f, "project `{project}`"),
            Self::Platform => f.write_str("the platform (every project)"),
        }
    }
}

/// The caller lacks a permission: the answer names it and where (PERMISSION_DENIED).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{who} lacks the `{permission}` permission on {target}; ask an admin for a role that \
     grants it (auth.authorization.bindings, docs/auth.md)"
)]
pub struct Denied {
    pub who: String,
    pub permission: Permission,
    pub target: String,
}

/// The policy, from [`AuthorizationConfig`] and the bindings stored over the API. Clones
/// share the stored bindings: setting them on one (after a change, or the periodic reload)
/// applies to every clone.
#[derive(Debug, Clone)]
pub struct Authorizer {
    config: AuthorizationConfig,
    stored: std::sync::Arc<std::sync::RwLock<Vec<Binding>>>,
}

impl Authorizer {
    pub fn new(config: AuthorizationConfig) -> Self {
        Self {
            config,
            stored: Default::default(),
        }
    }

    /// Replaces the bindings made over the API (the configuration's stay).
    pub fn set_stored(&self, bindings: Vec<Binding>) {
        match self.stored.write() {
            Ok(mut g) => *g = bindings,
            Err(poisoned) => *poisoned.into_inner() = bindings,
        }
    }

    pub fn config(&self) -> &AuthorizationConfig {
        &self.config
    }

    /// The caller's groups, from the configured claim (a list, or one string).
    pub fn groups(&self, id: &Identity) -> Vec<String> {
        crate::group_names(id.claims.get(&self.config.groups_claim))
    }

    fn is_user(id: &Identity, user: &str) -> bool {
        id.subject == user || id.email.as_deref() == Some(user)
    }

    pub fn is_platform_admin(&self, id: &Identity) -> bool {
        let groups = self.groups(id);
        self.config.platform_admins.iter().any(|p| {
            if let Some(u) = p.strip_prefix("user:") {
                Self::is_user(id, u)
            } else if let Some(g) = p.strip_prefix("group:") {
                groups.iter().any(|x| x == g)
            } else {
                false
            }
        })
    }

    /// The bindings that apply to the caller: the configuration's and the stored ones.
    fn bindings_of(&self, id: &Identity) -> Vec<Binding> {
        let groups = self.groups(id);
        let applies = |b: &&Binding| {
            b.user.as_deref().is_some_and(|u| Self::is_user(id, u))
                || b.group
                    .as_deref()
                    .is_some_and(|g| groups.iter().any(|x| x == g))
        };
        let mut out: Vec<Binding> = self
            .config
            .bindings
            .iter()
            .filter(applies)
            .cloned()
            .collect();
        let stored = match self.stored.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        out.extend(stored.iter().filter(applies).cloned());
        out
    }

    /// Whether `id` holds `permission` on `target`.
    pub fn allows(&self, id: &Identity, permission: Permission, target: Target<'_>) -> bool {
        if let Some(task) = &id.task {
            // A task's token: an executor on its own project and domain, whatever the
            // bindings say (they bind people and groups, not executions).
            return Role::Executor.permissions().contains(&permission)
                && target
                    == Target::Project {
                        project: &task.project,
                        domain: Some(&task.domain),
                    };
        }
        if self.is_platform_admin(id) {
            return true;
        }
        if permission == Permission::AdminPlatform {
            return false;
        }
        self.bindings_of(id).iter().any(|b| {
            let covers = match target {
                Target::Platform => b.project == "*" && b.domain.is_none(),
                Target::Project { project, domain } => {
                    (b.project == "*" || b.project == project)
                        && match (&b.domain, domain) {
                            (None, _) => true,
                            (Some(bd), Some(d)) => bd == d,
                            // A binding on one domain does not grant a call on the whole
                            // project (e.g. changing the project's own attributes).
                            (Some(_), None) => false,
                        }
                }
            };
            covers && b.role.permissions().contains(&permission)
        })
    }

    /// [`Self::allows`] as a result naming what is missing.
    pub fn check(
        &self,
        id: &Identity,
        permission: Permission,
        target: Target<'_>,
    ) -> Result<(), Denied> {
        if self.allows(id, permission, target) {
            return Ok(());
        }
        Err(Denied {
            who: describe(id),
            permission,
            target: target.to_string(),
        })
    }

    /// Whether the caller may see `project` at all (read on any of its domains): what
    /// ListProjects shows.
    pub fn may_see_project(&self, id: &Identity, project: &str) -> bool {
        if let Some(task) = &id.task {
            return task.project == project;
        }
        self.is_platform_admin(id)
            || self.bindings_of(id).iter().any(|b| {
                (b.project == "*" || b.project == project)
                    && b.role.permissions().contains(&Permission::Read)
            })
    }
}

/// `user `alice` (alice@example.com)` — how a denial and the audit name the caller.
pub fn describe(id: &Identity) -> String {
    if let Some(task) = &id.task {
        return format!("the task token of execution `{}`", task.subject());
    }
    match &id.email {
        Some(e) if e != &id.subject => format!("user `{}` ({e})", id.subject),
        _ => format!("user `{}`", id.subject),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn who(sub: &str, email: Option<&str>, groups: &[&str]) -> Identity {
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), json!(sub));
        claims.insert("roles".into(), json!(groups));
        Identity {
            subject: sub.into(),
            email: email.map(str::to_owned),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            claims,
            ..Identity::default()
        }
    }

    fn config(yaml: &str) -> AuthorizationConfig {
        serde_json::from_value(serde_yaml_like(yaml)).expect("valid config")
    }

    // The tests write the section as JSON (the crate has no YAML parser).
    fn serde_yaml_like(s: &str) -> serde_json::Value {
        serde_json::from_str(s).expect("json")
    }

    fn policy() -> Authorizer {
        Authorizer::new(config(
            r#"{
              "enabled": true,
              "groups_claim": "roles",
              "platform_admins": ["user:root", "group:ops"],
              "bindings": [
                {"user": "vic", "role": "viewer", "project": "flytesnacks"},
                {"user": "eve@example.com", "role": "executor", "project": "flytesnacks",
                 "domain": "development"},
                {"group": "ml", "role": "registrant", "project": "ml"},
                {"group": "auditors", "role": "viewer", "project": "*"},
                {"user": "ada", "role": "admin", "project": "ml"}
              ]
            }"#,
        ))
    }

    const DEV: Target<'static> = Target::Project {
        project: "flytesnacks",
        domain: Some("development"),
    };
    const PROD: Target<'static> = Target::Project {
        project: "flytesnacks",
        domain: Some("production"),
    };

    #[test]
    fn a_viewer_reads_but_neither_runs_nor_registers() {
        let p = policy();
        let vic = who("vic", None, &[]);
        assert!(p.allows(&vic, Permission::Read, DEV));
        assert!(p.allows(&vic, Permission::Read, PROD));
        let denied = p.check(&vic, Permission::Execute, DEV).unwrap_err();
        assert_eq!(
            denied.to_string(),
            "user `vic` lacks the `execute` permission on project `flytesnacks`, domain \
             `development`; ask an admin for a role that grants it \
             (auth.authorization.bindings, docs/auth.md)"
        );
        assert!(!p.allows(&vic, Permission::Register, DEV));
        // Another project: nothing.
        let other = Target::Project {
            project: "ml",
            domain: Some("development"),
        };
        assert!(!p.allows(&vic, Permission::Read, other));
    }

    #[test]
    fn a_binding_by_email_on_one_domain_covers_only_that_domain() {
        let p = policy();
        let eve = who("eve-sub", Some("eve@example.com"), &[]);
        assert!(p.allows(&eve, Permission::Execute, DEV));
        assert!(!p.allows(&eve, Permission::Execute, PROD));
        assert!(!p.allows(&eve, Permission::Read, PROD));
        // A whole-project call is not covered by a one-domain binding.
        let project = Target::Project {
            project: "flytesnacks",
            domain: None,
        };
        assert!(!p.allows(&eve, Permission::Read, project));
        assert!(p.may_see_project(&eve, "flytesnacks"));
        assert!(!p.may_see_project(&eve, "ml"));
    }

    #[test]
    fn groups_come_from_the_configured_claim() {
        let p = policy();
        // In `roles` (the configured claim): registrant on ml.
        let mut bob = who("bob", None, &["ml"]);
        let ml = Target::Project {
            project: "ml",
            domain: Some("production"),
        };
        assert!(p.allows(&bob, Permission::Register, ml));
        assert!(p.allows(&bob, Permission::Execute, ml));
        assert!(!p.allows(&bob, Permission::AdminProject, ml));
        // Only in the standard `groups` field, not in the configured claim: nothing.
        bob.claims.remove("roles");
        assert!(!p.allows(&bob, Permission::Read, ml));
        // A lone string is one group.
        bob.claims.insert("roles".into(), json!("ml"));
        assert!(p.allows(&bob, Permission::Read, ml));
    }

    #[test]
    fn star_bindings_cover_every_project_and_the_platform_for_their_permissions() {
        let p = policy();
        let aud = who("aud", None, &["auditors"]);
        assert!(p.allows(&aud, Permission::Read, DEV));
        assert!(p.allows(&aud, Permission::Read, Target::Platform));
        assert!(!p.allows(&aud, Permission::Execute, Target::Platform));
        assert!(p.may_see_project(&aud, "anything"));
        // A project binding does not grant platform calls.
        let vic = who("vic", None, &[]);
        assert!(!p.allows(&vic, Permission::Read, Target::Platform));
    }

    #[test]
    fn admin_platform_is_only_for_platform_admins() {
        let p = policy();
        let ada = who("ada", None, &[]);
        let ml = Target::Project {
            project: "ml",
            domain: None,
        };
        assert!(p.allows(&ada, Permission::AdminProject, ml));
        assert!(!p.allows(&ada, Permission::AdminPlatform, Target::Platform));
        for root in [who("root", None, &[]), who("x", None, &["ops"])] {
            assert!(p.allows(&root, Permission::AdminPlatform, Target::Platform));
            assert!(p.allows(&root, Permission::Register, DEV));
            assert!(p.may_see_project(&root, "anything"));
        }
        // A stranger: nothing anywhere.
        let nobody = who("nobody", None, &["ml-other"]);
        assert!(!p.allows(&nobody, Permission::Read, DEV));
        assert!(!p.may_see_project(&nobody, "flytesnacks"));
    }

    #[test]
    fn a_task_token_reads_and_runs_in_its_own_project_and_domain_only() {
        let p = policy();
        let task = Identity {
            subject: "execution:flytesnacks/development/x1".into(),
            task: Some(crate::TaskScope {
                project: "flytesnacks".into(),
                domain: "development".into(),
                execution: "x1".into(),
                attempt: "n0/0".into(),
            }),
            ..Identity::default()
        };
        assert!(p.allows(&task, Permission::Read, DEV));
        assert!(p.allows(&task, Permission::Execute, DEV));
        assert!(!p.allows(&task, Permission::Register, DEV));
        assert!(!p.allows(&task, Permission::Read, PROD));
        assert!(!p.allows(&task, Permission::Read, Target::Platform));
        let ml = Target::Project {
            project: "ml",
            domain: Some("development"),
        };
        let denied = p.check(&task, Permission::Execute, ml).unwrap_err();
        assert!(denied.to_string().starts_with(
            "the task token of execution `execution:flytesnacks/development/x1` lacks the \
             `execute` permission on project `ml`"
        ));
        assert!(p.may_see_project(&task, "flytesnacks"));
        assert!(!p.may_see_project(&task, "ml"));
    }

    #[test]
    fn validation_names_the_key() {
        let mut c = AuthorizationConfig {
            enabled: true,
            ..Default::default()
        };
        assert!(c.validate(false).unwrap_err().contains("auth.enabled"));
        assert_eq!(c.validate(true), Ok(()));
        c.bindings.push(Binding {
            user: Some("a".into()),
            group: Some("b".into()),
            role: Role::Viewer,
            project: "p".into(),
            domain: None,
        });
        assert!(
            c.validate(true)
                .unwrap_err()
                .starts_with("auth.authorization.bindings[0]: set exactly one")
        );
        c.bindings.clear();
        c.platform_admins.push("root".into());
        assert!(
            c.validate(true)
                .unwrap_err()
                .starts_with("auth.authorization.platform_admins[0]")
        );
        // Off: nothing is checked.
        c.enabled = false;
        assert_eq!(c.validate(false), Ok(()));
    }
}
