//! The schedule arithmetic against a calendar: month ends, leap days, DST in a zone, fixed
//! rates from their activation, catch-up windows, and the messages for bad schedules.

use chrono::{DateTime, Duration, TimeZone, Utc};
use flyteidl::admin::{self, CronSchedule, FixedRate, FixedRateUnit, schedule::ScheduleExpression};

use super::*;

fn cron(expr: &str) -> Schedule {
    cron_offset(expr, "")
}

fn cron_offset(expr: &str, offset: &str) -> Schedule {
    Schedule::from_proto(&admin::Schedule {
        kickoff_time_input_arg: "kickoff_time".into(),
        schedule_expression: Some(ScheduleExpression::CronSchedule(CronSchedule {
            schedule: expr.into(),
            offset: offset.into(),
        })),
    })
    .unwrap()
}

fn rate(value: u32, unit: FixedRateUnit) -> Result<Schedule, ScheduleError> {
    Schedule::from_proto(&admin::Schedule {
        kickoff_time_input_arg: String::new(),
        schedule_expression: Some(ScheduleExpression::Rate(FixedRate {
            value,
            unit: unit as i32,
        })),
    })
}

fn utc_at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

fn amsterdam() -> Tz {
    parse_time_zone("Europe/Amsterdam").unwrap()
}

#[test]
fn aliases_and_five_fields() {
    let hourly = cron("@hourly");
    assert_eq!(hourly.kickoff_input.as_deref(), Some("kickoff_time"));
    assert_eq!(
        hourly.next_after(utc_at(2026, 12, 7, 10, 15, 0), utc()),
        Some(utc_at(2026, 12, 7, 11, 0, 0))
    );
    // Exactly on a tick: the next one (strictly after).
    assert_eq!(
        hourly.next_after(utc_at(2026, 12, 7, 11, 0, 0), utc()),
        Some(utc_at(2026, 12, 7, 12, 0, 0))
    );
    assert_eq!(
        cron("@daily").next_after(utc_at(2026, 12, 7, 10, 15, 0), utc()),
        Some(utc_at(2026, 12, 8, 0, 0, 0))
    );
    // 2026-12-07 is a Monday; @weekly is Sunday midnight.
    assert_eq!(
        cron("@weekly").next_after(utc_at(2026, 12, 7, 10, 0, 0), utc()),
        Some(utc_at(2026, 12, 13, 0, 0, 0))
    );
    assert_eq!(
        cron("*/15 9-17 * * MON-FRI").next_after(utc_at(2026, 12, 11, 17, 50, 0), utc()),
        Some(utc_at(2026, 12, 14, 9, 0, 0)),
        "Friday after 17:45 → Monday 09:00"
    );
}

#[test]
fn month_ends_and_leap_days() {
    let on_31st = cron("0 0 31 * *");
    // After 31 January, the next 31st is in March.
    assert_eq!(
        on_31st.next_after(utc_at(2027, 1, 31, 0, 0, 0), utc()),
        Some(utc_at(2027, 3, 31, 0, 0, 0))
    );
    let leap = cron("0 12 29 2 *");
    assert_eq!(
        leap.next_after(utc_at(2026, 3, 1, 0, 0, 0), utc()),
        Some(utc_at(2028, 2, 29, 12, 0, 0))
    );
    let monthly = cron("@monthly");
    let ticks = monthly.upcoming(utc_at(2027, 1, 15, 0, 0, 0), utc(), 3);
    assert_eq!(
        ticks,
        [
            utc_at(2027, 2, 1, 0, 0, 0),
            utc_at(2027, 3, 1, 0, 0, 0),
            utc_at(2027, 4, 1, 0, 0, 0)
        ]
    );
}

#[test]
fn day_of_month_or_day_of_week_as_vixie_cron() {
    // Restricted both: the 13th OR a Friday. 2027-08-01 is a Sunday.
    let s = cron("0 0 13 * FRI");
    let ticks = s.upcoming(utc_at(2027, 8, 1, 0, 0, 0), utc(), 3);
    assert_eq!(
        ticks,
        [
            utc_at(2027, 8, 6, 0, 0, 0),
            utc_at(2027, 8, 13, 0, 0, 0),
            utc_at(2027, 8, 20, 0, 0, 0)
        ]
    );
}

#[test]
fn daylight_saving_time_in_the_configured_zone() {
    let tz = amsterdam();
    // Every day at 09:00 Amsterdam time: 08:00 UTC in winter, 07:00 UTC in summer.
    let nine = cron("0 9 * * *");
    assert_eq!(
        nine.next_after(utc_at(2027, 3, 27, 12, 0, 0), tz),
        Some(utc_at(2027, 3, 28, 7, 0, 0)),
        "the day clocks go forward (28 March 2027), 09:00 CEST is 07:00 UTC"
    );
    assert_eq!(
        nine.next_after(utc_at(2027, 10, 30, 12, 0, 0), tz),
        Some(utc_at(2027, 10, 31, 8, 0, 0)),
        "the day clocks go back, 09:00 CET is 08:00 UTC"
    );
    // 02:30 does not exist on 28 March 2027 (02:00 → 03:00): the run is the first instant
    // after the gap, once.
    let half_two = cron("30 2 * * *");
    let spring = half_two.due(
        utc_at(2027, 3, 27, 12, 0, 0),
        utc_at(2027, 3, 28, 12, 0, 0),
        tz,
        10,
    );
    assert_eq!(spring.ticks, [utc_at(2027, 3, 28, 1, 0, 0)]);
    // 02:30 happens twice on 31 October 2027: a fixed-time job runs once.
    let autumn = half_two.due(
        utc_at(2027, 10, 30, 12, 0, 0),
        utc_at(2027, 10, 31, 12, 0, 0),
        tz,
        10,
    );
    assert_eq!(autumn.ticks.len(), 1, "{:?}", autumn.ticks);
    // An hourly job runs every real hour: 25 of them on the 25-hour day.
    let hourly = cron("0 * * * *");
    let day = hourly.due(
        wall(tz, 2027, 10, 31, 0, 0).unwrap() - Duration::seconds(1),
        wall(tz, 2027, 11, 1, 0, 0).unwrap() - Duration::seconds(1),
        tz,
        100,
    );
    assert_eq!(day.ticks.len(), 25, "{:?}", day.ticks);
    // In UTC (the default) nothing shifts.
    assert_eq!(
        nine.next_after(utc_at(2027, 3, 27, 12, 0, 0), utc()),
        Some(utc_at(2027, 3, 28, 9, 0, 0))
    );
}

#[test]
fn fixed_rate_counts_from_the_activation_in_whole_seconds() {
    let every5 = rate(5, FixedRateUnit::Minute).unwrap();
    assert_eq!(every5.description, "every 5 minutes");
    assert!(every5.kickoff_input.is_none());
    let activated = utc_at(2026, 12, 7, 12, 0, 30) + Duration::milliseconds(700);
    assert_eq!(
        every5.upcoming(activated, utc(), 3),
        [
            utc_at(2026, 12, 7, 12, 5, 30),
            utc_at(2026, 12, 7, 12, 10, 30),
            utc_at(2026, 12, 7, 12, 15, 30)
        ]
    );
    // The next ticks after now follow the chain from the last tick, not from now.
    assert_eq!(
        every5.next_ticks(activated, utc_at(2026, 12, 7, 12, 12, 0), utc(), 2),
        [
            utc_at(2026, 12, 7, 12, 15, 30),
            utc_at(2026, 12, 7, 12, 20, 30)
        ]
    );
    // Zones do not matter to a fixed rate, nor does DST.
    assert_eq!(
        rate(1, FixedRateUnit::Day)
            .unwrap()
            .next_after(utc_at(2027, 3, 27, 12, 0, 0), amsterdam()),
        Some(utc_at(2027, 3, 28, 12, 0, 0))
    );
    assert_eq!(
        rate(2, FixedRateUnit::Hour).unwrap().description,
        "every 2 hours"
    );
}

#[test]
fn due_keeps_the_newest_ticks_up_to_the_limit() {
    let minutely = cron("* * * * *");
    let from = utc_at(2026, 12, 7, 12, 0, 0);
    let all = minutely.due(from, from + Duration::minutes(10), utc(), 100);
    assert_eq!(all.ticks.len(), 10);
    assert_eq!(all.ticks[0], utc_at(2026, 12, 7, 12, 1, 0));
    assert_eq!(all.skipped, 0);
    let bounded = minutely.due(from, from + Duration::minutes(10), utc(), 3);
    assert_eq!(
        bounded.ticks,
        [
            utc_at(2026, 12, 7, 12, 8, 0),
            utc_at(2026, 12, 7, 12, 9, 0),
            utc_at(2026, 12, 7, 12, 10, 0)
        ]
    );
    assert_eq!(bounded.skipped, 7);
    // Nothing due yet.
    let none = minutely.due(from, from + Duration::seconds(59), utc(), 3);
    assert!(none.ticks.is_empty() && none.skipped == 0);
}

#[test]
fn offset_shifts_every_tick() {
    let daily_at_two = cron_offset("@daily", "PT2H");
    assert_eq!(
        daily_at_two.next_after(utc_at(2026, 12, 7, 1, 0, 0), utc()),
        Some(utc_at(2026, 12, 7, 2, 0, 0))
    );
    assert_eq!(
        daily_at_two.next_after(utc_at(2026, 12, 7, 2, 0, 0), utc()),
        Some(utc_at(2026, 12, 8, 2, 0, 0))
    );
    let early = cron_offset("0 12 * * *", "-PT5M");
    assert_eq!(
        early.next_after(utc_at(2026, 12, 7, 0, 0, 0), utc()),
        Some(utc_at(2026, 12, 7, 11, 55, 0))
    );
    assert_eq!(parse_iso_duration("P1DT1H").unwrap(), Duration::hours(25));
    assert_eq!(parse_iso_duration("P1W").unwrap(), Duration::days(7));
    assert_eq!(
        parse_iso_duration("PT0.5S").unwrap(),
        Duration::milliseconds(500)
    );
}

#[test]
fn bad_schedules_say_what_to_write() {
    let err = |s: admin::Schedule| Schedule::from_proto(&s).unwrap_err().0;
    let cron_of = |expr: &str, offset: &str| admin::Schedule {
        kickoff_time_input_arg: String::new(),
        schedule_expression: Some(ScheduleExpression::CronSchedule(CronSchedule {
            schedule: expr.into(),
            offset: offset.into(),
        })),
    };
    let six = err(cron_of("0 0 * * * *", ""));
    assert!(six.contains("five fields"), "{six}");
    let garbage = err(cron_of("61 * * * *", ""));
    assert!(garbage.contains("is invalid"), "{garbage}");
    let months = err(cron_of("@daily", "P1M"));
    assert!(months.contains("no fixed length"), "{months}");
    let no_unit = err(cron_of("@daily", "PT5"));
    assert!(no_unit.contains("ISO 8601"), "{no_unit}");
    #[allow(deprecated)]
    let aws = err(admin::Schedule {
        kickoff_time_input_arg: String::new(),
        schedule_expression: Some(ScheduleExpression::CronExpression("0/15 * * * ? *".into())),
    });
    assert!(aws.contains("CronSchedule(schedule="), "{aws}");
    let zero = rate(0, FixedRateUnit::Minute).unwrap_err().0;
    assert!(zero.contains("at least 1"), "{zero}");
    let empty = err(admin::Schedule::default());
    assert!(empty.contains("no expression"), "{empty}");
    let tz = parse_time_zone("Mars/Olympus").unwrap_err().0;
    assert!(tz.contains("IANA"), "{tz}");
}
