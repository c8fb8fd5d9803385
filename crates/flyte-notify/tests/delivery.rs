//! Delivery from the outbox to real local receivers (an HTTP server and an SMTP server run
//! by the test), in injected time: retries wait for their backoff, a receiver that comes
//! back gets the notification once, attempts run out.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use flyte_engine::clock::Clock;
use flyte_notify::senders::{SmtpConfig, SmtpTls};
use flyte_notify::{Notifier, NotifyConfig};
use flyte_store::{
    ExecutionKey, ExecutionRecord, MetadataStore, NotificationState, StateBatch, StateRead,
    StateSnapshot,
};
use flyteidl::{admin, core};
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

struct ManualClock(AtomicI64);
impl Clock for ManualClock {
    fn now_us(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
impl ManualClock {
    fn advance(&self, d: Duration) {
        self.0.fetch_add(d.as_micros() as i64, Ordering::SeqCst);
    }
}

const START_US: i64 = 1_700_000_000_000_000;

/// An HTTP receiver recording each request (path, JSON body); answers 503 to the first
/// `fail_first` requests and to every request on `/down`.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
    fail_first: Arc<AtomicUsize>,
}

async fn start_receiver(fail_first: usize) -> (Receiver, String) {
    let receiver = Receiver::default();
    receiver.fail_first.store(fail_first, Ordering::SeqCst);
    let r = receiver.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let r = r.clone();
        async move {
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let failing = uri.path() == "/down"
                || r.fail_first
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
            if failing {
                return axum::http::StatusCode::SERVICE_UNAVAILABLE;
            }
            r.got.lock().unwrap().push((uri.path().to_owned(), json));
            axum::http::StatusCode::OK
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, format!("http://{addr}"))
}

/// A minimal SMTP server (RFC 5321's happy path) on `listener`: records each message's DATA.
fn serve_smtp(listener: TcpListener, mails: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let mails = mails.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let mut data: Option<String> = None;
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(d) = data.as_mut() {
                        if line == "." {
                            mails.lock().unwrap().push(data.take().unwrap_or_default());
                            write.write_all(b"250 queued\r\n").await.unwrap();
                        } else {
                            d.push_str(&line);
                            d.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-test\r\n250 8BITMIME\r\n",
                        "DATA" => {
                            data = Some(String::new());
                            b"354 go on\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.unwrap();
                            return;
                        }
                        _ => b"250 OK\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
}

fn email(phase: core::workflow_execution::Phase, to: &str) -> admin::Notification {
    admin::Notification {
        phases: vec![phase as i32],
        r#type: Some(admin::notification::Type::Email(admin::EmailNotification {
            recipients_email: vec![to.into()],
            template: String::new(),
        })),
    }
}

fn slack(phase: core::workflow_execution::Phase) -> admin::Notification {
    admin::Notification {
        phases: vec![phase as i32],
        r#type: Some(admin::notification::Type::Slack(admin::SlackNotification {
            recipients_email: vec!["ops-channel@example.slack.com".into()],
            template: String::new(),
        })),
    }
}

/// Creates an execution asking for `notifications` and writes it in `phase`.
async fn finished(
    store: &Arc<dyn MetadataStore>,
    name: &str,
    phase: &'static str,
    notifications: Vec<admin::Notification>,
) -> ExecutionKey {
    let at = Utc.timestamp_micros(START_US).unwrap();
    let key = ExecutionKey {
        project: "flytesnacks".into(),
        domain: "development".into(),
        name: name.into(),
    };
    let spec = admin::ExecutionSpec {
        notification_overrides: Some(admin::execution_spec::NotificationOverrides::Notifications(
            admin::NotificationList { notifications },
        )),
        ..Default::default()
    };
    let closure = admin::ExecutionClosure {
        output_result: (phase == "FAILED").then(|| {
            admin::execution_closure::OutputResult::Error(core::ExecutionError {
                message: "task t1 exploded".into(),
                ..Default::default()
            })
        }),
        ..Default::default()
    };
    let record = ExecutionRecord {
        key: key.clone(),
        launch_plan: None,
        workflow: None,
        task: None,
        phase: "RUNNING".into(),
        mode: 0,
        state: 0,
        principal: "test".into(),
        parent: None,
        spec: spec.encode_to_vec(),
        closure: closure.encode_to_vec(),
        inputs_uri: String::new(),
        user_inputs_uri: String::new(),
        created_at: at,
        updated_at: at,
        started_at: None,
        error_code: String::new(),
        duration_ms: 0,
        tags: Vec::new(),
        notify_phases: flyte_store::NOTIFY_PHASES.map(String::from).to_vec(),
    };
    store.create_execution(record, None).await.unwrap();
    store
        .transition(
            StateRead {
                execution: key.clone(),
                ..Default::default()
            },
            Box::new(move |s: StateSnapshot| {
                let mut e = s.execution;
                e.phase = phase.into();
                StateBatch {
                    executions: vec![e],
                    ..Default::default()
                }
            }),
        )
        .await
        .unwrap();
    key
}

async fn setup(
    config: NotifyConfig,
) -> (
    Arc<dyn MetadataStore>,
    Arc<ManualClock>,
    Notifier,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = flyte_store::open(&format!("sqlite://{}/flyte.db", dir.path().display()))
        .await
        .unwrap();
    let clock = Arc::new(ManualClock(AtomicI64::new(START_US)));
    let notifier = Notifier::new(store.clone(), clock.clone(), config).unwrap();
    (store, clock, notifier, dir)
}

fn config() -> NotifyConfig {
    NotifyConfig {
        console_url: "http://flyte.example/console".into(),
        backoff_initial: Duration::from_secs(5),
        backoff_max: Duration::from_secs(60),
        max_attempts: 3,
        ..NotifyConfig::default()
    }
}

#[tokio::test]
async fn slack_and_webhook_retried_until_the_receiver_answers_each_sent_once() {
    // The first request (Slack's) is refused; the generic webhook's succeeds.
    let (receiver, base) = start_receiver(1).await;
    let (store, clock, notifier, _dir) = setup(NotifyConfig {
        slack_webhook_url: Some(format!("{base}/slack")),
        webhook_urls: vec![format!("{base}/hook")],
        ..config()
    })
    .await;
    let key = finished(
        &store,
        "exec1",
        "SUCCEEDED",
        vec![slack(core::workflow_execution::Phase::Succeeded)],
    )
    .await;

    assert_eq!(notifier.run_once().await.unwrap(), 1);
    let rows = store.list_notifications(&key).await.unwrap();
    assert_eq!(rows[0].state, NotificationState::Pending, "{rows:?}");
    assert_eq!(rows[0].attempts, 1);
    assert!(rows[0].last_error.contains("503"), "{}", rows[0].last_error);

    // Not before its backoff.
    clock.advance(Duration::from_secs(4));
    assert_eq!(notifier.run_once().await.unwrap(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(notifier.run_once().await.unwrap(), 1);
    assert_eq!(
        notifier.run_once().await.unwrap(),
        0,
        "delivered: nothing more to send"
    );

    let got = receiver.got.lock().unwrap().clone();
    let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        vec!["/hook", "/slack"],
        "each delivered once: {got:?}"
    );
    let hook = &got[0].1;
    assert_eq!(hook["execution"]["name"], "exec1");
    assert_eq!(hook["phase"], "SUCCEEDED");
    assert_eq!(
        hook["console_url"],
        "http://flyte.example/console/projects/flytesnacks/domains/development/executions/exec1"
    );
    let text = got[1].1["text"].as_str().unwrap();
    assert!(
        text.starts_with("Notice: Execution \"exec1\" has succeeded in \"development\"."),
        "{text}"
    );
    let rows = store.list_notifications(&key).await.unwrap();
    assert_eq!(rows[0].state, NotificationState::Delivered);
    assert_eq!(rows[0].attempts, 2);
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_doubling_waits() {
    let (_receiver, base) = start_receiver(0).await;
    let (store, clock, notifier, _dir) = setup(NotifyConfig {
        slack_webhook_url: Some(format!("{base}/down")),
        ..config()
    })
    .await;
    let key = finished(
        &store,
        "exec2",
        "FAILED",
        vec![slack(core::workflow_execution::Phase::Failed)],
    )
    .await;
    assert_eq!(notifier.run_once().await.unwrap(), 1);
    clock.advance(Duration::from_secs(5));
    assert_eq!(notifier.run_once().await.unwrap(), 1);
    // The second wait is twice the first.
    clock.advance(Duration::from_secs(9));
    assert_eq!(notifier.run_once().await.unwrap(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(notifier.run_once().await.unwrap(), 1);
    let rows = store.list_notifications(&key).await.unwrap();
    assert_eq!(rows[0].state, NotificationState::Failed, "{rows:?}");
    assert_eq!(rows[0].attempts, 3);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(
        notifier.run_once().await.unwrap(),
        0,
        "given up: never again"
    );
}

#[tokio::test]
async fn email_waits_for_the_mail_server_then_arrives_templated() {
    // Reserve a port, then leave it closed: the mail server is down.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let (store, clock, notifier, _dir) = setup(NotifyConfig {
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            username: String::new(),
            password: String::new(),
            timeout: Duration::from_secs(10),
        }),
        sender: "flyte@example.com".into(),
        body: "{{ project }}/{{ domain }}/{{ name }} is {{ phase }}.{{ error }}".into(),
        ..config()
    })
    .await;
    let key = finished(
        &store,
        "exec3",
        "FAILED",
        vec![
            email(core::workflow_execution::Phase::Failed, "alice@example.com"),
            // Not asked for this phase: not sent.
            email(
                core::workflow_execution::Phase::Succeeded,
                "bob@example.com",
            ),
        ],
    )
    .await;
    assert_eq!(notifier.run_once().await.unwrap(), 1);
    let rows = store.list_notifications(&key).await.unwrap();
    assert_eq!(rows[0].state, NotificationState::Pending, "{rows:?}");

    // The mail server comes back.
    let mails = Arc::new(Mutex::new(Vec::new()));
    serve_smtp(
        TcpListener::bind(("127.0.0.1", port)).await.unwrap(),
        mails.clone(),
    );
    clock.advance(Duration::from_secs(5));
    assert_eq!(notifier.run_once().await.unwrap(), 1);
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1, "{mails:?}");
    // The body is quoted-printable: undo its soft line breaks.
    let mail = &mails[0].replace("=\n", "");
    assert!(mail.contains("To: alice@example.com"), "{mail}");
    assert!(!mail.contains("bob@example.com"), "{mail}");
    assert!(mail.contains("From: flyte@example.com"), "{mail}");
    assert!(
        mail.contains("Subject: Notice: Execution \"exec3\" has failed in \"development\"."),
        "{mail}"
    );
    assert!(
        mail.contains(
            "flytesnacks/development/exec3 is failed. The execution failed with error: [task t1 exploded]."
        ),
        "{mail}"
    );
    assert_eq!(
        store.list_notifications(&key).await.unwrap()[0].state,
        NotificationState::Delivered
    );
}

#[tokio::test]
async fn disabled_server_sends_nothing_and_closes_the_row() {
    let (receiver, base) = start_receiver(0).await;
    let (store, _clock, notifier, _dir) = setup(NotifyConfig {
        enabled: false,
        slack_webhook_url: Some(format!("{base}/slack")),
        ..config()
    })
    .await;
    let key = finished(
        &store,
        "exec4",
        "SUCCEEDED",
        vec![slack(core::workflow_execution::Phase::Succeeded)],
    )
    .await;
    assert_eq!(notifier.run_once().await.unwrap(), 1);
    assert!(receiver.got.lock().unwrap().is_empty());
    assert_eq!(
        store.list_notifications(&key).await.unwrap()[0].state,
        NotificationState::Delivered
    );
}

#[tokio::test]
async fn pagerduty_trigger_event_to_the_events_api() {
    let (receiver, base) = start_receiver(0).await;
    let (store, _clock, notifier, _dir) = setup(NotifyConfig {
        pagerduty: Some(flyte_notify::PagerDutyConfig {
            routing_key: "R0UTINGKEY".into(),
            events_url: format!("{base}/v2/enqueue"),
        }),
        ..config()
    })
    .await;
    let pd = admin::Notification {
        phases: vec![core::workflow_execution::Phase::Failed as i32],
        r#type: Some(admin::notification::Type::PagerDuty(
            admin::PagerDutyNotification {
                recipients_email: vec!["svc@example.pagerduty.com".into()],
                template: String::new(),
            },
        )),
    };
    finished(&store, "exec5", "FAILED", vec![pd]).await;
    assert_eq!(notifier.run_once().await.unwrap(), 1);
    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let (path, event) = &got[0];
    assert_eq!(path, "/v2/enqueue");
    assert_eq!(event["routing_key"], "R0UTINGKEY");
    assert_eq!(event["event_action"], "trigger");
    assert_eq!(
        event["dedup_key"],
        "flyte/flytesnacks/development/exec5/FAILED"
    );
    assert_eq!(event["payload"]["severity"], "error");
    assert_eq!(
        event["payload"]["custom_details"]["error"],
        "task t1 exploded"
    );
    assert_eq!(
        event["links"][0]["href"],
        "http://flyte.example/console/projects/flytesnacks/domains/development/executions/exec5"
    );
}

#[tokio::test]
async fn closed_rows_pruned_after_the_retention_from_their_closing_pending_kept() {
    use core::workflow_execution::Phase;
    // The first request is refused: one of the Slack rows stays pending.
    let (_receiver, base) = start_receiver(1).await;
    let (store, clock, notifier, _dir) = setup(NotifyConfig {
        slack_webhook_url: Some(format!("{base}/slack")),
        retention: Some(Duration::from_secs(3600)),
        prune_batch: 2,
        ..config()
    })
    .await;
    let mut keys = Vec::new();
    for name in ["s1", "s2", "s3"] {
        keys.push(finished(&store, name, "SUCCEEDED", vec![slack(Phase::Succeeded)]).await);
    }
    // No SMTP server configured: given up at once.
    keys.push(
        finished(
            &store,
            "e1",
            "FAILED",
            vec![email(Phase::Failed, "ops@example.com")],
        )
        .await,
    );
    assert_eq!(notifier.run_once().await.unwrap(), 4);
    let states = |store: Arc<dyn MetadataStore>, keys: Vec<ExecutionKey>| async move {
        let mut states = Vec::new();
        for key in &keys {
            for row in store.list_notifications(key).await.unwrap() {
                states.push(row.state);
            }
        }
        states.sort_by_key(|s| *s as i32);
        states
    };
    assert_eq!(
        states(store.clone(), keys.clone()).await,
        [
            NotificationState::Pending,
            NotificationState::Delivered,
            NotificationState::Delivered,
            NotificationState::Failed
        ]
    );
    // The pending one is delivered 50 minutes later: closed then.
    clock.advance(Duration::from_secs(50 * 60));
    assert_eq!(notifier.run_once().await.unwrap(), 1);
    assert_eq!(
        notifier.prune_once().await.unwrap(),
        0,
        "all within the hour"
    );
    // 70 minutes: the three closed at the start go, in batches of two; the late one stays.
    clock.advance(Duration::from_secs(20 * 60));
    assert_eq!(notifier.prune_once().await.unwrap(), 3);
    assert_eq!(
        states(store.clone(), keys.clone()).await,
        [NotificationState::Delivered]
    );
    clock.advance(Duration::from_secs(50 * 60));
    assert_eq!(notifier.prune_once().await.unwrap(), 1);
    assert!(states(store.clone(), keys.clone()).await.is_empty());
}

#[tokio::test]
async fn pending_rows_are_never_pruned_and_no_retention_keeps_all() {
    use core::workflow_execution::Phase;
    let (_receiver, base) = start_receiver(0).await;
    let (store, clock, notifier, _dir) = setup(NotifyConfig {
        slack_webhook_url: Some(format!("{base}/down")),
        retention: Some(Duration::from_secs(60)),
        ..config()
    })
    .await;
    let key = finished(&store, "p1", "SUCCEEDED", vec![slack(Phase::Succeeded)]).await;
    assert_eq!(notifier.run_once().await.unwrap(), 1);
    clock.advance(Duration::from_secs(3600));
    assert_eq!(notifier.prune_once().await.unwrap(), 0);
    assert_eq!(
        store.list_notifications(&key).await.unwrap()[0].state,
        NotificationState::Pending
    );
    let keep = Notifier::new(
        store.clone(),
        clock.clone(),
        NotifyConfig {
            retention: None,
            ..config()
        },
    )
    .unwrap();
    assert_eq!(keep.prune_once().await.unwrap(), 0);
}
