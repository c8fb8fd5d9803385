//! Embedded migrations, one directory per backend (`migrations/sqlite`, `migrations/postgres`)
//! with the same version numbers in both. A new migration is a new file in each directory and
//! one line in each list below; the unit test keeps lists and directories in step.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// (version, description, SQL)
type Embedded = (i64, &'static str, &'static str);

pub(crate) const SQLITE: &[Embedded] = &[
    (
        1,
        "initial",
        include_str!("../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "executions",
        include_str!("../migrations/sqlite/0002_executions.sql"),
    ),
    (
        3,
        "signals",
        include_str!("../migrations/sqlite/0003_signals.sql"),
    ),
    (
        4,
        "cache",
        include_str!("../migrations/sqlite/0004_cache.sql"),
    ),
    (
        5,
        "leases",
        include_str!("../migrations/sqlite/0005_leases.sql"),
    ),
    (
        6,
        "execution filters",
        include_str!("../migrations/sqlite/0006_execution_filters.sql"),
    ),
    (
        7,
        "attributes",
        include_str!("../migrations/sqlite/0007_attributes.sql"),
    ),
    (
        8,
        "launch plan schedules",
        include_str!("../migrations/sqlite/0008_schedules.sql"),
    ),
    (
        9,
        "notification outbox",
        include_str!("../migrations/sqlite/0009_notifications.sql"),
    ),
    (
        10,
        "notify phases and retry group",
        include_str!("../migrations/sqlite/0010_notify_phases_retry_group.sql"),
    ),
    (
        11,
        "role bindings and audit records",
        include_str!("../migrations/sqlite/0011_auth.sql"),
    ),
];

pub(crate) const POSTGRES: &[Embedded] = &[
    (
        1,
        "initial",
        include_str!("../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "executions",
        include_str!("../migrations/postgres/0002_executions.sql"),
    ),
    (
        3,
        "signals",
        include_str!("../migrations/postgres/0003_signals.sql"),
    ),
    (
        4,
        "cache",
        include_str!("../migrations/postgres/0004_cache.sql"),
    ),
    (
        5,
        "leases",
        include_str!("../migrations/postgres/0005_leases.sql"),
    ),
    (
        6,
        "execution filters",
        include_str!("../migrations/postgres/0006_execution_filters.sql"),
    ),
    (
        7,
        "attributes",
        include_str!("../migrations/postgres/0007_attributes.sql"),
    ),
    (
        8,
        "launch plan schedules",
        include_str!("../migrations/postgres/0008_schedules.sql"),
    ),
    (
        9,
        "notification outbox",
        include_str!("../migrations/postgres/0009_notifications.sql"),
    ),
    (
        10,
        "notify phases and retry group",
        include_str!("../migrations/postgres/0010_notify_phases_retry_group.sql"),
    ),
    (
        11,
        "role bindings and audit records",
        include_str!("../migrations/postgres/0011_auth.sql"),
    ),
];

/// A migrator over embedded migrations (no `migrate!` macro, so no sqlx `macros` feature).
pub(crate) fn migrator(migrations: &'static [Embedded]) -> Migrator {
    Migrator::with_migrations(
        migrations
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(backend: &str) -> Vec<(i64, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut out: Vec<(i64, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| {
                let version = n.split('_').next().unwrap().parse().unwrap();
                let sql = std::fs::read_to_string(dir.join(&n)).unwrap();
                (version, sql)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn every_migration_file_is_embedded_and_backends_agree() {
        for (backend, list) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let embedded: Vec<(i64, String)> = list
                .iter()
                .map(|(v, _, sql)| (*v, sql.to_string()))
                .collect();
            assert_eq!(
                files(backend),
                embedded,
                "migrations/{backend} and migrations::{backend} differ"
            );
        }
        let versions = |l: &[Embedded]| l.iter().map(|m| m.0).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE), versions(POSTGRES));
        assert_eq!(migrator(SQLITE).iter().count(), SQLITE.len());
    }
}
