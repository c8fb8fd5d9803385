//! Secrets through the local-process backend with real processes: what the task process
//! receives (variables, even those whose names are not shell names; files and their modes),
//! that its secret files are gone once the attempt ends, and how a missing secret fails it.

mod backend_support;

use std::sync::Arc;
use std::time::Duration;

use backend_support::*;
use flyte_engine::backend::{AttemptOutcome, LocalProcessBackend, LocalProcessConfig, TaskBackend};
use flyte_engine::secrets::{SecretEnv, ServerSecrets};
use flyteidl::core::{Secret, SecurityContext, TaskTemplate, execution_error, secret::MountType};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(30);

fn backend(f: &Fixture, server_env: &[(&str, &str)]) -> LocalProcessBackend {
    let mut config = LocalProcessConfig::new(f.data_dir(), "http://127.0.0.1:30080/");
    config.secrets = Arc::new(ServerSecrets::new(
        Some(f.data_dir().join("operator-secrets")),
        "FLYTE_SECRET_",
        SecretEnv::capture("FLYTE_SECRET_", server_env.iter().copied()),
    ));
    LocalProcessBackend::new(config, f.store.clone())
}

fn with_secrets(
    mut template: TaskTemplate,
    secrets: &[(&str, &str, MountType, &str)],
) -> TaskTemplate {
    template.security_context = Some(SecurityContext {
        secrets: secrets
            .iter()
            .map(|(group, key, mount, env_var)| Secret {
                group: group.to_string(),
                key: key.to_string(),
                mount_requirement: *mount as i32,
                env_var: env_var.to_string(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    });
    template
}

#[tokio::test]
async fn the_task_process_gets_its_secrets_and_they_are_gone_after_it() {
    let f = Fixture::new();
    let group_dir = f.data_dir().join("operator-secrets/user-info");
    std::fs::create_dir_all(&group_dir).unwrap();
    std::fs::write(group_dir.join("password"), "pw-from-file").unwrap();
    let b = backend(&f, &[("FLYTE_SECRET_USER-INFO_TOKEN", "tok-from-env")]);
    let report = f.data_dir().join("report.txt");
    // /proc/$$/environ: what the process was given, including the variables that dash, as
    // `sh`, does not take into its own environment (names with `-`).
    let script = format!(
        r#"{{
  tr '\0' '\n' < /proc/$$/environ | grep -E '^(_FSEC_|FLYTE_SECRETS_|TOKEN_VAR|PW_PATH)' | sort
  echo "file=$(cat "$FLYTE_SECRETS_DEFAULT_DIR/user-info/password")"
  echo "file_mode=$(stat -c %a "$PW_PATH") dir_mode=$(stat -c %a "$FLYTE_SECRETS_DEFAULT_DIR")"
}} > "{report}"
"#,
        report = report.display()
    );
    let template = with_secrets(
        shell_task(&script, None),
        &[
            ("user-info", "token", MountType::EnvVar, "TOKEN_VAR"),
            ("user-info", "password", MountType::File, "PW_PATH"),
        ],
    );
    let k = key("sec1", "n0", 0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(f.attempt(k.clone(), template), tx).await.unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    assert!(
        matches!(outcome, AttemptOutcome::Succeeded { .. }),
        "{outcome:?}"
    );

    let dir = f
        .data_dir()
        .join("work/flytesnacks/development/sec1/n0/0.secrets");
    let got = std::fs::read_to_string(&report).unwrap();
    let expected = format!(
        "FLYTE_SECRETS_DEFAULT_DIR={dir}\nFLYTE_SECRETS_ENV_PREFIX=_FSEC_\n\
         FLYTE_SECRETS_FILE_PREFIX=\nPW_PATH={dir}/user-info/password\n\
         TOKEN_VAR=tok-from-env\n_FSEC_USER-INFO_TOKEN=tok-from-env\n\
         file=pw-from-file\nfile_mode=600 dir_mode=700\n",
        dir = dir.display()
    );
    assert_eq!(got, expected);
    assert!(!dir.exists(), "the attempt's secret files outlived it");
}

#[tokio::test]
async fn a_missing_secret_fails_the_attempt_before_it_starts() {
    let f = Fixture::new();
    let b = backend(&f, &[]);
    let ran = f.data_dir().join("ran");
    let template = with_secrets(
        shell_task(&format!("touch {}", ran.display()), None),
        &[("user-info", "nope", MountType::Any, "")],
    );
    let k = key("sec2", "n0", 0);
    let (tx, mut rx) = mpsc::unbounded_channel();
    b.start(f.attempt(k.clone(), template), tx).await.unwrap();
    let (_, outcome) = until_finished(&mut rx, &k, WAIT).await;
    let AttemptOutcome::Failed {
        error, retryable, ..
    } = outcome
    else {
        panic!("{outcome:?}");
    };
    assert_eq!(error.code, "SecretNotFound");
    assert_eq!(error.kind, execution_error::ErrorKind::User as i32);
    assert!(!retryable);
    let path = f.data_dir().join("operator-secrets/user-info/nope");
    for part in [
        "[user-info/nope]",
        "FLYTE_SECRET_USER-INFO_NOPE",
        &path.display().to_string(),
    ] {
        assert!(
            error.message.contains(part),
            "{part} not in {}",
            error.message
        );
    }
    assert!(!ran.exists(), "the task ran without its secret");
    let log = std::fs::read_to_string(
        f.data_dir()
            .join("logs/flytesnacks/development/sec2/n0/0.log"),
    )
    .unwrap();
    assert!(log.contains("[user-info/nope]"), "{log}");
}
