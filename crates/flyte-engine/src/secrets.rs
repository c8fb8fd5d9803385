//! Secrets for task attempts: where the server finds them ([`SecretSource`]) and how an
//! attempt receives the ones its task template requests ([`provide`]), by the conventions
//! flytekit's `SecretsManager` reads and propeller's secret-injection webhook writes.
//!
//! * Naming (flytekit): the environment variable is `_FSEC_` + `GROUP[_GROUP_VERSION]_KEY`
//!   upper-cased; the file is `<dir>/<group>[/<group_version>]/<key>` lower-cased. flytekit
//!   tries the variable first, then the file; `FLYTE_SECRETS_ENV_PREFIX`,
//!   `FLYTE_SECRETS_DEFAULT_DIR` and `FLYTE_SECRETS_FILE_PREFIX` tell it the prefix and the
//!   directory, and are set for every attempt that receives a secret.
//! * `mount_requirement` (propeller's Kubernetes injector): `ENV_VAR` sets the variable;
//!   `FILE` and `ANY` write the file (ANY is a file there too: files do not leak into child
//!   processes' environments). `env_var` names one more variable: the value for `ENV_VAR`,
//!   the file's path for `FILE`.
//! * The files of an attempt live in a directory of its own (mode 0700, files 0600) that the
//!   backend removes when the attempt ends.
//! * A secret that is not there fails the attempt (USER) naming the secret and where it was
//!   looked for; never its value. Values only ever go to the task process: [`SecretValue`]
//!   has no `Display` and a redacted `Debug`, so they cannot end up in a log line by accident.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use flyteidl::core::{Secret, TaskTemplate, secret::MountType};

/// Prefix of the variables a task reads its secrets from (flytekit's default).
pub const TASK_ENV_PREFIX: &str = "_FSEC_";
/// Tells flytekit the prefix of secret variables.
pub const ENV_PREFIX_VAR: &str = "FLYTE_SECRETS_ENV_PREFIX";
/// Tells flytekit where secret files are.
pub const DEFAULT_DIR_VAR: &str = "FLYTE_SECRETS_DEFAULT_DIR";
/// Tells flytekit the prefix of secret file names (empty here, as propeller sets it).
pub const FILE_PREFIX_VAR: &str = "FLYTE_SECRETS_FILE_PREFIX";
/// Prefix of the server's own environment variables that hold secrets (propeller's global
/// secret manager's `env-prefix` default): `FLYTE_SECRET_<GROUP>_<KEY>`.
pub const DEFAULT_SERVER_ENV_PREFIX: &str = "FLYTE_SECRET_";
/// Larger secret files are refused (the size limit of a Kubernetes secret).
pub const MAX_SECRET_BYTES: u64 = 1024 * 1024;

/// A secret's value. Never printed: `Debug` shows `<redacted>` and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// One requested secret: a key, in a group, optionally of a group version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretId {
    pub group: String,
    pub group_version: String,
    pub key: String,
}

impl SecretId {
    pub fn new(group: &str, group_version: &str, key: &str) -> Result<Self, SecretError> {
        let id = Self {
            group: group.into(),
            group_version: group_version.into(),
            key: key.into(),
        };
        // The names become path components and variable names: a `..` or `/` would reach
        // files outside the secrets directory.
        let bad = |what: &str, v: &str| {
            SecretError::Invalid(format!(
                "secret request [{id}]: {what} `{v}` must consist of letters, digits, `-`, `_` \
                 and `.` (and not be `.` or `..`)"
            ))
        };
        for (what, v) in [("group", group), ("group_version", group_version)] {
            if !v.is_empty() && !valid_name(v) {
                return Err(bad(what, v));
            }
        }
        if key.is_empty() {
            return Err(SecretError::Invalid(format!(
                "secret request [{id}]: the key is required"
            )));
        }
        if !valid_name(key) {
            return Err(bad("key", key));
        }
        Ok(id)
    }

    /// group, group version, key: the ones that are set, in that order.
    fn parts(&self) -> impl Iterator<Item = &str> {
        [&self.group, &self.group_version, &self.key]
            .into_iter()
            .map(String::as_str)
            .filter(|p| !p.is_empty())
    }

    /// The variable flytekit reads: `_FSEC_GROUP[_VERSION]_KEY`.
    pub fn task_env_var(&self) -> String {
        self.env_var(TASK_ENV_PREFIX)
    }

    /// The file flytekit reads under `dir`: `<dir>/group[/version]/key`, lower-cased.
    pub fn task_file(&self, dir: &Path) -> PathBuf {
        let mut path = dir.to_path_buf();
        path.extend(self.parts().map(str::to_lowercase));
        path
    }

    fn env_var(&self, prefix: &str) -> String {
        let upper: Vec<String> = self.parts().map(str::to_uppercase).collect();
        format!("{prefix}{}", upper.join("_"))
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = self.parts().collect();
        write!(f, "{}", parts.join("/"))
    }
}

fn valid_name(v: &str) -> bool {
    v != "."
        && v != ".."
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Why a secret could not be given to an attempt.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The task's request is malformed.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "secret [{id}] requested by the task was not found: looked for {looked}; the operator \
         provides it there (docs/secrets.md)"
    )]
    NotFound { id: String, looked: String },
    /// Found but not usable as requested (too large, not text for a variable).
    #[error("secret [{id}]: {why}")]
    Unusable { id: String, why: String },
    /// Our fault: the source or the attempt's secrets directory could not be read or written.
    #[error("cannot provide secret [{id}]: {why}")]
    Io { id: String, why: String },
}

impl SecretError {
    /// The task (its request, or a secret nobody provided) is at fault, not the server.
    pub fn is_user(&self) -> bool {
        !matches!(self, SecretError::Io { .. })
    }

    /// The error code of the failed attempt.
    pub fn code(&self) -> &'static str {
        match self {
            SecretError::Invalid(_) => "InvalidSecretRequest",
            SecretError::NotFound { .. } => "SecretNotFound",
            SecretError::Unusable { .. } => "SecretUnusable",
            SecretError::Io { .. } => "SecretError",
        }
    }
}

/// Where the server finds secrets. One implementation today ([`ServerSecrets`]: a directory
/// and the server's environment); a Kubernetes or vault source implements the same.
pub trait SecretSource: Send + Sync + fmt::Debug + 'static {
    /// The secret's value, or [`SecretError::NotFound`] naming where it was looked for.
    fn get(&self, id: &SecretId) -> Result<SecretValue, SecretError>;

    /// Whether the server's environment variable `name` holds a secret of this source: such
    /// variables are never passed on to task processes with the server's environment.
    fn hides_env_var(&self, name: &str) -> bool {
        let _ = name;
        false
    }
}

/// The embedded default source, propeller's global secret manager: the server's environment
/// variable `<env_prefix>GROUP[_VERSION]_KEY` (upper-cased), else the file
/// `<dir>/<group>[/<version>]/<key>` (names as requested). Files are read at each attempt's
/// start, so secrets added to the directory need no restart; variables are those the server
/// started with.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ServerSecrets {
    dir: Option<PathBuf>,
    env_prefix: String,
    env: SecretEnv,
}

impl ServerSecrets {
    /// `dir: None` or an empty `env_prefix` turns that half off.
    pub fn new(dir: Option<PathBuf>, env_prefix: impl Into<String>, env: SecretEnv) -> Self {
        Self {
            dir,
            env_prefix: env_prefix.into(),
            env,
        }
    }
}

impl fmt::Debug for ServerSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSecrets")
            .field("dir", &self.dir)
            .field("env_prefix", &self.env_prefix)
            .field("env", &self.env)
            .finish()
    }
}

impl SecretSource for ServerSecrets {
    fn get(&self, id: &SecretId) -> Result<SecretValue, SecretError> {
        let mut looked = Vec::new();
        if !self.env_prefix.is_empty() {
            let var = id.env_var(&self.env_prefix);
            if let Some(v) = self.env.0.get(&var) {
                return Ok(v.clone());
            }
            looked.push(format!("the server's environment variable {var}"));
        }
        if let Some(dir) = &self.dir {
            let mut path = dir.clone();
            path.extend(id.parts());
            match read_limited(&path) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => looked.push(format!("the file {}", path.display())),
                Err(why) => {
                    return Err(SecretError::Io {
                        id: id.to_string(),
                        why: format!("{}: {why}", path.display()),
                    });
                }
            }
        }
        if looked.is_empty() {
            looked.push("nothing (no secret source is configured)".into());
        }
        Err(SecretError::NotFound {
            id: id.to_string(),
            looked: looked.join(" and "),
        })
    }

    fn hides_env_var(&self, name: &str) -> bool {
        !self.env_prefix.is_empty() && name.starts_with(&self.env_prefix)
    }
}

/// `Ok(None)` when there is no such file.
fn read_limited(path: &Path) -> Result<Option<SecretValue>, String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(format!("larger than {MAX_SECRET_BYTES} bytes"));
    }
    Ok(Some(SecretValue(bytes)))
}

/// The server's environment variables that hold secrets (those with the source's prefix),
/// captured once at start by the configuration. `Debug` shows their names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretEnv(BTreeMap<String, SecretValue>);

impl SecretEnv {
    /// The variables of `vars` that start with `prefix` (none for an empty prefix).
    pub fn capture<'a>(prefix: &str, vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        if prefix.is_empty() {
            return Self::default();
        }
        Self(
            vars.into_iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| (k.to_string(), SecretValue::new(v.as_bytes())))
                .collect(),
        )
    }
}

impl fmt::Debug for SecretEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Gives an attempt the secrets its template requests: looks every one up in `source`
/// first (nothing is written when one is missing), then writes the files under `dir` (made
/// afresh, 0700; files 0600) and adds the variables to `env`. The caller removes `dir` when
/// the attempt ends. A template requesting nothing changes nothing.
pub fn provide(
    source: &dyn SecretSource,
    template: &TaskTemplate,
    dir: &Path,
    env: &mut BTreeMap<String, String>,
) -> Result<(), SecretError> {
    let requests: &[Secret] = template
        .security_context
        .as_ref()
        .map(|s| s.secrets.as_slice())
        .unwrap_or_default();
    if requests.is_empty() {
        return Ok(());
    }
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut files: Vec<(PathBuf, SecretValue, String)> = Vec::new();
    for request in requests {
        let id = SecretId::new(&request.group, &request.group_version, &request.key)?;
        let extra = request.env_var.as_str();
        if !extra.is_empty() && (extra.contains('=') || extra.contains('\0')) {
            return Err(SecretError::Invalid(format!(
                "secret request [{id}]: env_var `{extra}` is not a valid variable name"
            )));
        }
        let mount = MountType::try_from(request.mount_requirement).map_err(|_| {
            SecretError::Invalid(format!(
                "secret request [{id}]: unknown mount_requirement {}",
                request.mount_requirement
            ))
        })?;
        let value = source.get(&id)?;
        match mount {
            MountType::EnvVar => {
                let text = String::from_utf8(value.0).map_err(|_| SecretError::Unusable {
                    id: id.to_string(),
                    why: "not UTF-8 text, so it cannot be an environment variable; request \
                          it as a file (mount_requirement=FILE)"
                        .into(),
                })?;
                if !extra.is_empty() {
                    vars.push((extra.to_string(), text.clone()));
                }
                vars.push((id.task_env_var(), text));
                vars.push((ENV_PREFIX_VAR.into(), TASK_ENV_PREFIX.into()));
            }
            MountType::File | MountType::Any => {
                let path = id.task_file(dir);
                if !extra.is_empty() {
                    vars.push((extra.to_string(), path.to_string_lossy().into_owned()));
                }
                files.push((path, value, id.to_string()));
            }
        }
    }
    if !files.is_empty() {
        write_files(dir, &files)?;
        vars.push((DEFAULT_DIR_VAR.into(), dir.to_string_lossy().into_owned()));
        vars.push((FILE_PREFIX_VAR.into(), String::new()));
    }
    env.extend(vars);
    Ok(())
}

fn write_files(dir: &Path, files: &[(PathBuf, SecretValue, String)]) -> Result<(), SecretError> {
    let io = |id: &str, what: &str, e: std::io::Error| SecretError::Io {
        id: id.to_string(),
        why: format!("{what}: {e}"),
    };
    let first = files.first().map(|f| f.2.as_str()).unwrap_or("");
    // Leftovers of an earlier run of this attempt number.
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(first, "cannot clear the attempt's secrets directory", e)),
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true).mode(0o700);
    for (path, value, id) in files {
        if let Some(parent) = path.parent() {
            builder
                .create(parent)
                .map_err(|e| io(id, "cannot create the attempt's secrets directory", e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io(id, "cannot write the secret file", e))?;
        file.write_all(&value.0)
            .map_err(|e| io(id, "cannot write the secret file", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use flyteidl::core::SecurityContext;

    use super::*;

    fn request(group: &str, key: &str, mount: MountType, env_var: &str) -> Secret {
        Secret {
            group: group.into(),
            key: key.into(),
            mount_requirement: mount as i32,
            env_var: env_var.into(),
            ..Default::default()
        }
    }

    fn template(secrets: Vec<Secret>) -> TaskTemplate {
        TaskTemplate {
            security_context: Some(SecurityContext {
                secrets,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn source(dir: &Path, env: &[(&str, &str)]) -> ServerSecrets {
        ServerSecrets::new(
            Some(dir.to_path_buf()),
            DEFAULT_SERVER_ENV_PREFIX,
            SecretEnv::capture(DEFAULT_SERVER_ENV_PREFIX, env.iter().copied()),
        )
    }

    #[test]
    fn names_follow_flytekit() {
        let id = SecretId::new("user-info", "", "User_Secret").unwrap();
        assert_eq!(id.task_env_var(), "_FSEC_USER-INFO_USER_SECRET");
        assert_eq!(
            id.task_file(Path::new("/s")),
            Path::new("/s/user-info/user_secret")
        );
        let versioned = SecretId::new("g", "v1", "k").unwrap();
        assert_eq!(versioned.task_env_var(), "_FSEC_G_V1_K");
        assert_eq!(versioned.task_file(Path::new("/s")), Path::new("/s/g/v1/k"));
        let no_group = SecretId::new("", "", "token").unwrap();
        assert_eq!(no_group.task_env_var(), "_FSEC_TOKEN");
        assert_eq!(no_group.task_file(Path::new("/s")), Path::new("/s/token"));
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        for (g, k) in [
            ("..", "k"),
            ("a/b", "k"),
            ("g", ".."),
            ("g", "a/../b"),
            ("g", ""),
        ] {
            let err = SecretId::new(g, "", k).unwrap_err();
            assert!(matches!(err, SecretError::Invalid(_)), "{g}/{k}: {err}");
        }
    }

    #[test]
    fn the_server_environment_wins_over_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("grp")).unwrap();
        std::fs::write(dir.path().join("grp/key"), "from-file").unwrap();
        std::fs::write(dir.path().join("grp/other"), "file-only").unwrap();
        let s = source(
            dir.path(),
            &[("FLYTE_SECRET_GRP_KEY", "from-env"), ("HOME", "/x")],
        );
        let id = |k| SecretId::new("grp", "", k).unwrap();
        assert_eq!(s.get(&id("key")).unwrap().expose(), b"from-env");
        assert_eq!(s.get(&id("other")).unwrap().expose(), b"file-only");
        assert!(s.hides_env_var("FLYTE_SECRET_GRP_KEY"));
        assert!(!s.hides_env_var("HOME"));
        // Only the prefixed variables are taken, and Debug shows names, never values.
        let shown = format!("{s:?}");
        assert!(shown.contains("FLYTE_SECRET_GRP_KEY"), "{shown}");
        assert!(
            !shown.contains("from-env") && !shown.contains("HOME"),
            "{shown}"
        );
    }

    #[test]
    fn a_missing_secret_names_itself_and_where_it_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let s = source(dir.path(), &[]);
        let err = s
            .get(&SecretId::new("grp", "", "nope").unwrap())
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, SecretError::NotFound { .. }));
        assert!(err.is_user());
        assert!(msg.contains("[grp/nope]"), "{msg}");
        assert!(msg.contains("FLYTE_SECRET_GRP_NOPE"), "{msg}");
        assert!(
            msg.contains(&dir.path().join("grp/nope").display().to_string()),
            "{msg}"
        );
    }

    #[test]
    fn oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("g")).unwrap();
        std::fs::write(
            dir.path().join("g/big"),
            vec![b'x'; MAX_SECRET_BYTES as usize + 1],
        )
        .unwrap();
        let err = source(dir.path(), &[])
            .get(&SecretId::new("g", "", "big").unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[test]
    fn env_and_file_mounts_as_flytekit_reads_them() {
        let src = tempfile::tempdir().unwrap();
        let s = source(
            src.path(),
            &[
                ("FLYTE_SECRET_API_TOKEN", "tok"),
                ("FLYTE_SECRET_DB_PASSWORD", "pw"),
            ],
        );
        let attempt = tempfile::tempdir().unwrap();
        let dir = attempt.path().join("a.secrets");
        let t = template(vec![
            request("api", "token", MountType::EnvVar, "MY_TOKEN"),
            request("db", "password", MountType::File, "PW_FILE"),
        ]);
        let mut env = BTreeMap::new();
        provide(&s, &t, &dir, &mut env).unwrap();
        assert_eq!(env["_FSEC_API_TOKEN"], "tok");
        assert_eq!(env["MY_TOKEN"], "tok");
        assert_eq!(env[ENV_PREFIX_VAR], "_FSEC_");
        assert_eq!(env[DEFAULT_DIR_VAR], dir.display().to_string());
        assert_eq!(env[FILE_PREFIX_VAR], "");
        let file = dir.join("db/password");
        assert_eq!(env["PW_FILE"], file.display().to_string());
        assert_eq!(std::fs::read(&file).unwrap(), b"pw");
        assert!(!env.contains_key("_FSEC_DB_PASSWORD"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("db")), 0o700);
    }

    #[test]
    fn any_is_a_file_and_nothing_is_written_when_one_is_missing() {
        let src = tempfile::tempdir().unwrap();
        let s = source(src.path(), &[("FLYTE_SECRET_G_A", "a")]);
        let attempt = tempfile::tempdir().unwrap();
        let dir = attempt.path().join("s");
        let mut env = BTreeMap::new();
        provide(
            &s,
            &template(vec![request("g", "a", MountType::Any, "")]),
            &dir,
            &mut env,
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.join("g/a")).unwrap(), b"a");

        std::fs::remove_dir_all(&dir).unwrap();
        let mut env = BTreeMap::new();
        let err = provide(
            &s,
            &template(vec![
                request("g", "a", MountType::File, ""),
                request("g", "missing", MountType::EnvVar, ""),
            ]),
            &dir,
            &mut env,
        )
        .unwrap_err();
        assert_eq!(err.code(), "SecretNotFound");
        assert!(!dir.exists());
        assert!(env.is_empty());
    }

    #[test]
    fn no_request_changes_nothing() {
        let mut env = BTreeMap::new();
        let dir = Path::new("/nonexistent/never-created");
        provide(
            &ServerSecrets::default(),
            &TaskTemplate::default(),
            dir,
            &mut env,
        )
        .unwrap();
        assert!(env.is_empty());
        let err = ServerSecrets::default()
            .get(&SecretId::new("g", "", "k").unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("no secret source"), "{err}");
    }

    #[test]
    fn binary_values_cannot_be_variables() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("g")).unwrap();
        std::fs::write(src.path().join("g/bin"), [0xff, 0xfe]).unwrap();
        let err = provide(
            &source(src.path(), &[]),
            &template(vec![request("g", "bin", MountType::EnvVar, "")]),
            Path::new("/unused"),
            &mut BTreeMap::new(),
        )
        .unwrap_err();
        assert_eq!(err.code(), "SecretUnusable");
    }
}
