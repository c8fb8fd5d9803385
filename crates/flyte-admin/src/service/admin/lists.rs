//! List requests in store terms: limit, token, Flyte's filter grammar and `admin.Sort`.
//! Fields are checked here, per resource, so a bad filter is refused with a message naming
//! the field and the fields that do work, before the store is asked.

use flyte_core::filters::{self, Filter, SortDirection, SortKey};
use flyte_store::ListQuery;
use flyteidl::admin::{Sort, sort};

use crate::error::{AdminError, AdminResult, quoted};

/// Larger limits are lowered to this: one page is held in memory and encoded at once.
pub(crate) const MAX_LIMIT: u32 = 10_000;

/// What one list accepts.
pub(crate) struct ListFields {
    /// What is listed, for messages ("tasks").
    pub what: &'static str,
    /// The entity prefixes a filter field may carry for this resource (`task` in `task.name`).
    pub prefixes: &'static [&'static str],
    pub filter_fields: &'static [&'static str],
    pub sort_fields: &'static [&'static str],
}

/// Tasks and workflows: what the store indexes for versioned entities. `updated_at` as in
/// flyteadmin's models (flytekit sorts by it: `pyflyte get launchplan`); versions never change,
/// so it is their creation time.
pub(crate) const ENTITY_FIELDS: &[&str] = &[
    "name",
    "version",
    "created_at",
    "updated_at",
    "project",
    "domain",
];
pub(crate) const LAUNCH_PLAN_FIELDS: &[&str] = &[
    "name",
    "version",
    "created_at",
    "updated_at",
    "project",
    "domain",
    "state",
];
pub(crate) const NAME_FIELDS: &[&str] = &["name", "project", "domain"];
pub(crate) const NAME_SORT_FIELDS: &[&str] = &["name", "created_at", "updated_at"];

/// The list parameters every list request carries, under different field numbers.
pub(crate) struct ListArgs<'a> {
    pub limit: u32,
    pub token: &'a str,
    pub filters: &'a str,
    pub sort_by: Option<&'a Sort>,
}

/// Builds the store query. A zero limit is refused, as flyteadmin does (`ValidateLimit`).
pub(crate) fn query(args: ListArgs<'_>, fields: &ListFields) -> AdminResult<ListQuery> {
    if args.limit == 0 {
        return Err(AdminError::InvalidArgument(format!(
            "invalid value for limit: 0; listing {} needs a limit of at least 1",
            fields.what
        )));
    }
    Ok(ListQuery {
        filters: parse_filters(args.filters, fields)?,
        sort: sort_key(args.sort_by, fields)?,
        limit: args.limit.min(MAX_LIMIT),
        token: args.token.to_string(),
    })
}

pub(crate) fn parse_filters(expr: &str, fields: &ListFields) -> AdminResult<Vec<Filter>> {
    let parsed =
        filters::parse(expr).map_err(|err| AdminError::InvalidArgument(err.to_string()))?;
    parsed
        .into_iter()
        .map(|f| check_filter(f, fields))
        .collect()
}

/// Accepts the field if it belongs to the listed resource; the prefix is dropped so the store
/// sees plain column names.
fn check_filter(mut filter: Filter, fields: &ListFields) -> AdminResult<Filter> {
    if let Some(entity) = filter.entity.take()
        && !fields.prefixes.contains(&entity.as_str())
    {
        return Err(AdminError::InvalidArgument(format!(
            "filter field {} cannot be used when listing {}; use plain field names \
             or the prefix {}",
            quoted(&format!("{entity}.{}", filter.field)),
            fields.what,
            fields.prefixes.join("., ") + "."
        )));
    }
    if !fields.filter_fields.contains(&filter.field.as_str()) {
        return Err(AdminError::InvalidArgument(format!(
            "unknown filter field {} for listing {} (supported: {})",
            quoted(&filter.field),
            fields.what,
            fields.filter_fields.join(", ")
        )));
    }
    Ok(filter)
}

fn sort_key(sort_by: Option<&Sort>, fields: &ListFields) -> AdminResult<Option<SortKey>> {
    let Some(sort_by) = sort_by.filter(|s| !s.key.is_empty()) else {
        return Ok(None);
    };
    if !fields.sort_fields.contains(&sort_by.key.as_str()) {
        return Err(AdminError::InvalidArgument(format!(
            "invalid sort key {} for listing {} (supported: {})",
            quoted(&sort_by.key),
            fields.what,
            fields.sort_fields.join(", ")
        )));
    }
    let direction = match sort::Direction::try_from(sort_by.direction) {
        Ok(sort::Direction::Ascending) => SortDirection::Ascending,
        Ok(sort::Direction::Descending) => SortDirection::Descending,
        Err(_) => {
            return Err(AdminError::InvalidArgument(format!(
                "invalid sort direction {} (expected ASCENDING or DESCENDING)",
                sort_by.direction
            )));
        }
    };
    Ok(Some(SortKey {
        field: sort_by.key.clone(),
        direction,
    }))
}
