//! The execution name of a schedule's tick: derived from the launch plan version and the
//! scheduled time only, so launching a tick twice (a retry, a restart, two replicas) names
//! the same execution and the second create is ALREADY_EXISTS.
//!
//! The derivation is flytescheduler's, so a tick gets the same name it would get on Flyte:
//! FNV-1 (64-bit) of `project:domain:name:version:unix_seconds`, its little-endian bytes
//! as the first half of a UUID, and `f` + the first 19 hex digits.

use chrono::{DateTime, Utc};
use flyte_store::EntityKey;

/// FNV-1, 64-bit (Go's `hash/fnv` `New64`; not FNV-1a).
fn fnv1_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        hash.wrapping_mul(PRIME) ^ u64::from(*byte)
    })
}

/// The name of the execution that `launch_plan`'s tick at `scheduled_at` launches.
pub fn execution_name(launch_plan: &EntityKey, scheduled_at: DateTime<Utc>) -> String {
    let input = format!(
        "{}:{}:{}:{}:{}",
        launch_plan.project,
        launch_plan.domain,
        launch_plan.name,
        launch_plan.version,
        scheduled_at.timestamp()
    );
    let hash = fnv1_64(input.as_bytes());
    let mut name = String::with_capacity(20);
    name.push('f');
    for byte in hash.to_le_bytes() {
        name.push_str(&format!("{byte:02x}"));
    }
    // The UUID's second half is zeros; flytescheduler keeps 19 of the 32 hex digits.
    name.push_str("000");
    name
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use flyte_store::ResourceType;

    use super::*;

    fn lp(version: &str) -> EntityKey {
        EntityKey {
            resource: ResourceType::LaunchPlan,
            project: "flytesnacks".into(),
            domain: "development".into(),
            name: "nightly".into(),
            version: version.into(),
        }
    }

    #[test]
    fn fnv1_matches_the_reference_vectors() {
        // The FNV reference values (Go's hash/fnv tests): "" and "a".
        assert_eq!(fnv1_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1_64(b"a"), 0xaf63_bd4c_8601_b7be);
    }

    #[test]
    fn one_name_per_tick_and_version() {
        let t = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
        let name = execution_name(&lp("v1"), t);
        assert_eq!(name.len(), 20);
        assert!(name.starts_with('f') && name.ends_with("000"), "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert_eq!(name, execution_name(&lp("v1"), t));
        // Sub-second parts do not matter: flytescheduler hashes Unix seconds.
        assert_eq!(
            name,
            execution_name(&lp("v1"), t + chrono::Duration::milliseconds(400))
        );
        assert_ne!(name, execution_name(&lp("v2"), t));
        assert_ne!(
            name,
            execution_name(&lp("v1"), t + chrono::Duration::minutes(1))
        );
    }
}
