//! Launch-plan schedules' bookkeeping: activation starts it, ticks only move forward, a new
//! activation starts over, and only active versions are listed.

use std::sync::Arc;

use chrono::{Duration, Utc};
use flyte_store::{LaunchPlanState, MetadataStore, ResourceType};

use crate::tests::{entity, key};

pub async fn schedules_follow_activation_and_ticks(store: Arc<dyn MetadataStore>) {
    let lp = |v: &str| key(ResourceType::LaunchPlan, "flytesnacks", "nightly", v);
    let before = Utc::now() - Duration::seconds(5);
    for v in ["v1", "v2"] {
        store
            .create_entity(entity(
                ResourceType::LaunchPlan,
                "flytesnacks",
                "nightly",
                v,
                before,
            ))
            .await
            .unwrap();
    }
    // Registered inactive: nothing to schedule.
    assert!(store.list_active_schedules().await.unwrap().is_empty());

    store
        .set_launch_plan_state(&lp("v1"), LaunchPlanState::Active)
        .await
        .unwrap();
    let listed = store.list_active_schedules().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let first = listed[0].clone();
    assert_eq!(first.launch_plan, lp("v1"));
    assert_eq!(first.last_tick_at, None);
    // The database's clock: close to ours.
    let skew = (first.activated_at - Utc::now()).num_seconds().abs();
    assert!(skew < 60, "activated_at {} is not now", first.activated_at);

    // Ticks move forward only, and only within the activation they belong to.
    let tick1 = first.activated_at + Duration::minutes(1);
    let tick2 = first.activated_at + Duration::minutes(2);
    assert!(
        store
            .record_schedule_tick(&lp("v1"), first.activated_at, tick2, "")
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_schedule_tick(&lp("v1"), first.activated_at, tick1, "")
            .await
            .unwrap(),
        "an older tick must not move the schedule back"
    );
    assert!(
        !store
            .record_schedule_tick(&lp("v1"), first.activated_at, tick2, "")
            .await
            .unwrap(),
        "the same tick twice is recorded once"
    );
    assert!(
        !store
            .record_schedule_tick(
                &lp("v1"),
                first.activated_at - Duration::seconds(1),
                tick2 + Duration::minutes(1),
                ""
            )
            .await
            .unwrap(),
        "a tick of another activation must not be recorded"
    );
    let tick3 = tick2 + Duration::minutes(1);
    assert!(
        store
            .record_schedule_tick(&lp("v1"), first.activated_at, tick3, "inputs missing: x")
            .await
            .unwrap()
    );
    let now = store.list_active_schedules().await.unwrap();
    assert_eq!(now[0].last_tick_at, Some(tick3));
    assert_eq!(now[0].last_error, "inputs missing: x");

    // Activating the active version again keeps its progress.
    store
        .set_launch_plan_state(&lp("v1"), LaunchPlanState::Active)
        .await
        .unwrap();
    let again = store.list_active_schedules().await.unwrap();
    assert_eq!(again[0].activated_at, first.activated_at);
    assert_eq!(again[0].last_tick_at, Some(tick3));

    // Activating v2 replaces v1 in the list; v2 starts from its own activation.
    store
        .set_launch_plan_state(&lp("v2"), LaunchPlanState::Active)
        .await
        .unwrap();
    let swapped = store.list_active_schedules().await.unwrap();
    assert_eq!(swapped.len(), 1, "{swapped:?}");
    assert_eq!(swapped[0].launch_plan, lp("v2"));
    assert_eq!(swapped[0].last_tick_at, None);

    // Deactivating stops it; activating v1 later starts it over (no catch-up of the time it
    // was inactive).
    store
        .set_launch_plan_state(&lp("v2"), LaunchPlanState::Inactive)
        .await
        .unwrap();
    assert!(store.list_active_schedules().await.unwrap().is_empty());
    store
        .set_launch_plan_state(&lp("v1"), LaunchPlanState::Active)
        .await
        .unwrap();
    let restarted = store.list_active_schedules().await.unwrap();
    assert_eq!(restarted[0].launch_plan, lp("v1"));
    assert_eq!(restarted[0].last_tick_at, None);
    assert!(restarted[0].activated_at >= first.activated_at);
    assert_eq!(restarted[0].last_error, "");

    // Registered already active (register --activate-launchplans) starts it too.
    let mut created = entity(
        ResourceType::LaunchPlan,
        "flytesnacks",
        "hourly",
        "v1",
        before,
    );
    created.state = Some(LaunchPlanState::Active);
    store.create_entity(created).await.unwrap();
    let names: Vec<String> = store
        .list_active_schedules()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.launch_plan.name)
        .collect();
    assert_eq!(names, ["hourly", "nightly"]);
}
