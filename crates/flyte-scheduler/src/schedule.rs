//! Schedule arithmetic: when a launch plan's schedule ticks. Pure functions of time, so
//! every edge (month ends, DST, catch-up) is tested without waiting.
//!
//! Semantics follow flytescheduler: a cron schedule ticks at the standard five-field cron
//! expression's times (OR of day-of-month and day-of-week when both are restricted, as
//! vixie cron), evaluated in the configured time zone; a fixed rate ticks every `rate` after
//! the activation time (truncated to the second), each tick `rate` after the previous one.
//! Flyte-RS adds the `offset` of a `CronSchedule` (an ISO 8601 duration that shifts every
//! tick), which flytescheduler ignores.

use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use flyteidl::admin::{self, FixedRateUnit, schedule::ScheduleExpression};

/// A schedule that cannot run, with a message for the person who registered it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

#[derive(Debug, Clone)]
enum Cadence {
    Cron { cron: Box<Cron>, offset: Duration },
    FixedRate(Duration),
}

/// A launch plan's schedule, parsed.
#[derive(Debug, Clone)]
pub struct Schedule {
    cadence: Cadence,
    /// The workflow input that receives the scheduled time, if the launch plan names one.
    pub kickoff_input: Option<String>,
    /// As a person reads it: `cron "0 * * * *"`, `every 5 minutes`.
    pub description: String,
}

/// The ticks due in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Oldest first.
    pub ticks: Vec<DateTime<Utc>>,
    /// Older ticks left out because there were more than the limit.
    pub skipped: u64,
}

/// How many ticks [`Schedule::due`] looks at before it gives up counting: a one-minute
/// schedule over two years of downtime.
const MAX_SCAN: u64 = 2 * 366 * 24 * 60;

impl Schedule {
    /// Parses the schedule of a launch plan spec (`entity_metadata.schedule`).
    pub fn from_proto(schedule: &admin::Schedule) -> Result<Self, ScheduleError> {
        let kickoff_input =
            Some(schedule.kickoff_time_input_arg.clone()).filter(|arg| !arg.is_empty());
        let (cadence, description) = match &schedule.schedule_expression {
            None => return Err(ScheduleError("the schedule has no expression".into())),
            #[allow(deprecated)]
            Some(ScheduleExpression::CronExpression(expr)) => {
                return Err(ScheduleError(format!(
                    "cron_expression {expr:?} uses the deprecated AWS syntax, which the native \
                     scheduler does not run; use CronSchedule(schedule=\"...\") with a standard \
                     five-field expression"
                )));
            }
            Some(ScheduleExpression::CronSchedule(cron)) => {
                let parsed = parse_cron(&cron.schedule)?;
                let offset = if cron.offset.trim().is_empty() {
                    Duration::zero()
                } else {
                    parse_iso_duration(&cron.offset)?
                };
                let description = if offset.is_zero() {
                    format!("cron {:?}", cron.schedule.trim())
                } else {
                    format!(
                        "cron {:?} offset {}",
                        cron.schedule.trim(),
                        cron.offset.trim()
                    )
                };
                (
                    Cadence::Cron {
                        cron: Box::new(parsed),
                        offset,
                    },
                    description,
                )
            }
            Some(ScheduleExpression::Rate(rate)) => {
                let (unit, seconds) = match FixedRateUnit::try_from(rate.unit) {
                    Ok(FixedRateUnit::Minute) => ("minute", 60),
                    Ok(FixedRateUnit::Hour) => ("hour", 3600),
                    Ok(FixedRateUnit::Day) => ("day", 86_400),
                    Err(_) => {
                        return Err(ScheduleError(format!(
                            "fixed rate unit {} is not MINUTE, HOUR or DAY",
                            rate.unit
                        )));
                    }
                };
                if rate.value == 0 {
                    return Err(ScheduleError(
                        "a fixed rate must be at least 1 (got 0)".into(),
                    ));
                }
                let every = Duration::seconds(i64::from(rate.value) * seconds);
                let plural = if rate.value == 1 { "" } else { "s" };
                (
                    Cadence::FixedRate(every),
                    format!("every {} {unit}{plural}", rate.value),
                )
            }
        };
        Ok(Self {
            cadence,
            kickoff_input,
            description,
        })
    }

    /// The first tick strictly after `after`, in zone `tz` (cron); `None` if there is none
    /// (a cron expression that never matches again, such as 30 February).
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match &self.cadence {
            Cadence::FixedRate(every) => {
                // As flytescheduler (robfig/cron's ConstantDelaySchedule): whole seconds.
                let base = after.duration_trunc(Duration::seconds(1)).ok()?;
                base.checked_add_signed(*every)
            }
            Cadence::Cron { cron, offset } => {
                let shifted = after.checked_sub_signed(*offset)?.with_timezone(&tz);
                let next = cron.find_next_occurrence(&shifted, false).ok()?;
                next.with_timezone(&Utc).checked_add_signed(*offset)
            }
        }
    }

    /// The ticks after `from` up to and including `until`, oldest first: at most `limit`,
    /// the newest ones; the count of older ones left out is in [`Due::skipped`].
    pub fn due(&self, from: DateTime<Utc>, until: DateTime<Utc>, tz: Tz, limit: usize) -> Due {
        let mut ticks = std::collections::VecDeque::new();
        let mut skipped = 0u64;
        let mut cursor = from;
        let mut scanned = 0u64;
        while let Some(tick) = self.next_after(cursor, tz) {
            if tick > until || scanned >= MAX_SCAN {
                break;
            }
            scanned += 1;
            ticks.push_back(tick);
            if ticks.len() > limit {
                ticks.pop_front();
                skipped += 1;
            }
            cursor = tick;
        }
        Due {
            ticks: ticks.into(),
            skipped,
        }
    }

    /// The next `n` ticks after `after` (what the console and the command line show).
    pub fn upcoming(&self, after: DateTime<Utc>, tz: Tz, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut cursor = after;
        while out.len() < n {
            match self.next_after(cursor, tz) {
                Some(tick) => {
                    out.push(tick);
                    cursor = tick;
                }
                None => break,
            }
        }
        out
    }

    /// The first `n` ticks after `now` of the schedule whose last tick (or activation) was
    /// `last`: a fixed rate's ticks follow from `last`, not from `now`.
    pub fn next_ticks(
        &self,
        last: DateTime<Utc>,
        now: DateTime<Utc>,
        tz: Tz,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut cursor = last;
        let mut scanned = 0u64;
        while let Some(tick) = self.next_after(cursor, tz) {
            if tick > now || scanned >= MAX_SCAN {
                break;
            }
            cursor = tick;
            scanned += 1;
        }
        // `cursor` is the last tick up to `now`: the ticks after it are the next ones.
        self.upcoming(cursor, tz, n)
    }
}

/// A standard five-field expression or one of the aliases (`@hourly`, `@daily`, `@weekly`,
/// `@monthly`, `@yearly`, `@annually`).
fn parse_cron(expression: &str) -> Result<Cron, ScheduleError> {
    let trimmed = expression.trim();
    if trimmed.is_empty() {
        return Err(ScheduleError("the cron schedule is empty".into()));
    }
    if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 5 {
        return Err(ScheduleError(format!(
            "cron schedule {trimmed:?} must have five fields (minute hour day-of-month month \
             day-of-week) or be one of @hourly, @daily, @weekly, @monthly, @yearly, @annually"
        )));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(trimmed)
        .map_err(|err| ScheduleError(format!("cron schedule {trimmed:?} is invalid: {err}")))
}

/// An ISO 8601 duration of fixed length: weeks, days, hours, minutes and seconds
/// (`P1D`, `PT1H30M`, `-PT5M`). Years and months have no fixed length and are refused.
pub fn parse_iso_duration(text: &str) -> Result<Duration, ScheduleError> {
    let invalid = |why: &str| {
        ScheduleError(format!(
            "offset {text:?} is not an ISO 8601 duration such as P1D, PT1H30M or -PT5M: {why}"
        ))
    };
    let trimmed = text.trim();
    let (negative, rest) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let rest = rest
        .strip_prefix('P')
        .or_else(|| rest.strip_prefix('p'))
        .ok_or_else(|| invalid("it must start with P"))?;
    if rest.is_empty() {
        return Err(invalid("no amount"));
    }
    let mut total = Duration::zero();
    let mut in_time = false;
    let mut number = String::new();
    let mut any = false;
    for ch in rest.chars() {
        match ch {
            '0'..='9' | '.' => number.push(ch),
            'T' | 't' if !in_time && number.is_empty() => in_time = true,
            unit => {
                if number.is_empty() {
                    return Err(invalid("a unit without a number"));
                }
                let value: f64 = number.parse().map_err(|_| invalid("a malformed number"))?;
                let seconds = match (in_time, unit.to_ascii_uppercase()) {
                    (false, 'W') => 7.0 * 86_400.0,
                    (false, 'D') => 86_400.0,
                    (true, 'H') => 3_600.0,
                    (true, 'M') => 60.0,
                    (true, 'S') => 1.0,
                    (false, 'Y') | (false, 'M') => {
                        return Err(invalid("years and months have no fixed length"));
                    }
                    _ => return Err(invalid("an unknown unit")),
                };
                let micros = value * seconds * 1e6;
                if !micros.is_finite() || micros.abs() > 1e17 {
                    return Err(invalid("too large"));
                }
                total += Duration::microseconds(micros as i64);
                number.clear();
                any = true;
            }
        }
    }
    if !number.is_empty() || !any {
        return Err(invalid("a number without a unit"));
    }
    Ok(if negative { -total } else { total })
}

/// The configured time zone by IANA name (`UTC`, `Europe/Amsterdam`).
pub fn parse_time_zone(name: &str) -> Result<Tz, ScheduleError> {
    name.trim().parse::<Tz>().map_err(|_| {
        ScheduleError(format!(
            "unknown time zone {name:?}: use an IANA name such as UTC or Europe/Amsterdam"
        ))
    })
}

/// `Utc` as a [`Tz`] (the default zone).
pub fn utc() -> Tz {
    chrono_tz::UTC
}

/// A UTC instant from a zone's wall-clock time (tests, docs examples).
pub fn wall(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Option<DateTime<Utc>> {
    tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests;
