//! Business hours: weekly opening ranges, holidays and make-up workdays (调休),
//! evaluated in the dialplan's time zone.

use std::collections::BTreeSet;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;

const MINUTES_PER_DAY: u32 = 24 * 60;

/// An opening range in minutes after local midnight. `end <= start` means the
/// range runs past midnight into the next day (e.g. 20:00-02:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start: u32,
    pub end: u32,
}

impl TimeRange {
    /// Parses `"HH:MM-HH:MM"`. `24:00` is allowed as an end so a whole day is
    /// `"00:00-24:00"`.
    pub fn parse(s: &str) -> Result<TimeRange, String> {
        let expected = "expected \"HH:MM-HH:MM\" such as \"08:30-17:30\"";
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("bad time range `{s}`; {expected}"))?;
        let start = parse_hhmm(a.trim())
            .ok_or_else(|| format!("bad start time `{a}` in `{s}`; {expected}"))?;
        let end = parse_hhmm(b.trim())
            .ok_or_else(|| format!("bad end time `{b}` in `{s}`; {expected}"))?;
        if start >= MINUTES_PER_DAY {
            return Err(format!("range `{s}` starts at 24:00; {expected}"));
        }
        if start == end {
            return Err(format!(
                "range `{s}` is empty; for a whole day use \"00:00-24:00\""
            ));
        }
        Ok(TimeRange { start, end })
    }

    fn crosses_midnight(&self) -> bool {
        self.end < self.start
    }
}

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

/// When the service line is staffed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// Opening ranges per weekday, Monday first.
    pub weekly: [Vec<TimeRange>; 7],
    /// Dates closed whatever their weekday.
    pub holidays: BTreeSet<NaiveDate>,
    /// Make-up working days (调休): open with `workday_hours` even on a weekend.
    pub workdays: BTreeSet<NaiveDate>,
    pub workday_hours: Vec<TimeRange>,
}

impl Calendar {
    /// Open every minute of every day: used when a dialplan has no [calendar].
    pub fn always_open() -> Calendar {
        let all = vec![TimeRange {
            start: 0,
            end: MINUTES_PER_DAY,
        }];
        Calendar {
            weekly: std::array::from_fn(|_| all.clone()),
            holidays: BTreeSet::new(),
            workdays: BTreeSet::new(),
            workday_hours: all,
        }
    }

    /// The ranges that start on `date`.
    pub fn ranges_for(&self, date: NaiveDate) -> &[TimeRange] {
        if self.holidays.contains(&date) {
            &[]
        } else if self.workdays.contains(&date) {
            &self.workday_hours
        } else {
            &self.weekly[date.weekday().num_days_from_monday() as usize]
        }
    }

    /// Open at this local wall-clock time? A range that started yesterday and
    /// crosses midnight still counts, even if today is a holiday: the shift
    /// that began is finished.
    pub fn is_open_local(&self, local: NaiveDateTime) -> bool {
        let date = local.date();
        let minute = local.hour() * 60 + local.minute();
        let today = self.ranges_for(date).iter().any(|r| {
            if r.crosses_midnight() {
                minute >= r.start
            } else {
                minute >= r.start && minute < r.end
            }
        });
        if today {
            return true;
        }
        date.pred_opt().is_some_and(|yesterday| {
            self.ranges_for(yesterday)
                .iter()
                .any(|r| r.crosses_midnight() && minute < r.end)
        })
    }

    pub fn is_open(&self, now: DateTime<Utc>, tz: Tz) -> bool {
        self.is_open_local(now.with_timezone(&tz).naive_local())
    }

    /// `now` if open, else the next moment the line opens (searching a bit
    /// over a year ahead); `None` if the calendar never opens.
    pub fn next_open(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if self.is_open(now, tz) {
            return Some(now);
        }
        let local_now = now.with_timezone(&tz).naive_local();
        let mut date = local_now.date();
        for _ in 0..400 {
            let mut starts: Vec<u32> = self.ranges_for(date).iter().map(|r| r.start).collect();
            starts.sort_unstable();
            for start in starts {
                let Some(naive) = date.and_hms_opt(start / 60, start % 60, 0) else {
                    continue;
                };
                if naive <= local_now {
                    continue;
                }
                if let Some(utc) = local_to_utc(tz, naive) {
                    return Some(utc);
                }
            }
            date = date.succ_opt()?;
        }
        None
    }
}

/// Resolves a local time; in a DST gap the opening moves to the first valid
/// instant after it (Asia/Shanghai has no DST, other zones might).
fn local_to_utc(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, _) => Some(a.with_timezone(&Utc)),
        LocalResult::None => tz
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map(|t| t.with_timezone(&Utc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Shanghai;

    fn r(s: &str) -> TimeRange {
        TimeRange::parse(s).expect("valid range in test")
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid date in test")
    }

    fn utc(y: i32, m: u32, day: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, day, h, min, 0).unwrap()
    }

    /// Mon-Fri 08:00-20:00, Sat 09:00-17:00, Sun closed, Fri night shift
    /// 22:00-02:00, National Day 2026-10-01 closed, Sat 2026-10-10 make-up day.
    fn sample() -> Calendar {
        let weekday = vec![r("08:00-20:00")];
        let mut fri = weekday.clone();
        fri.push(r("22:00-02:00"));
        Calendar {
            weekly: [
                weekday.clone(),
                weekday.clone(),
                weekday.clone(),
                weekday.clone(),
                fri,
                vec![r("09:00-17:00")],
                vec![],
            ],
            holidays: [d(2026, 10, 1)].into_iter().collect(),
            workdays: [d(2026, 10, 10)].into_iter().collect(),
            workday_hours: weekday,
        }
    }

    #[test]
    fn parse_ranges() {
        assert_eq!(
            r("08:30-17:45"),
            TimeRange {
                start: 510,
                end: 1065
            }
        );
        assert_eq!(
            r("00:00-24:00"),
            TimeRange {
                start: 0,
                end: 1440
            }
        );
        assert!(r("22:00-02:00").crosses_midnight());
        assert!(TimeRange::parse("8-17").is_err());
        assert!(TimeRange::parse("08:00-08:00").is_err());
        assert!(TimeRange::parse("24:00-02:00").is_err());
        assert!(TimeRange::parse("08:60-09:00").is_err());
        assert!(TimeRange::parse("08:00").is_err());
    }

    #[test]
    fn weekday_hours_in_shanghai_not_utc() {
        let cal = sample();
        // Tue 2026-11-24 00:30 UTC is 08:30 in Shanghai: open there...
        let t = utc(2026, 11, 24, 0, 30);
        assert!(cal.is_open(t, Shanghai));
        // ...but 00:30 in UTC is outside 08:00-20:00.
        assert!(!cal.is_open(t, Tz::UTC));
        // 12:00 UTC = 20:00 Shanghai: the end is exclusive.
        assert!(!cal.is_open(utc(2026, 11, 24, 12, 0), Shanghai));
        assert!(cal.is_open(utc(2026, 11, 24, 11, 59), Shanghai));
    }

    #[test]
    fn weekend_and_across_midnight() {
        let cal = sample();
        // Sat 2026-11-28 01:30 Shanghai (Fri 17:30 UTC): Friday's night shift.
        assert!(cal.is_open(utc(2026, 11, 27, 17, 30), Shanghai));
        // Sat 02:00 Shanghai: night shift over, Saturday not yet open.
        assert!(!cal.is_open(utc(2026, 11, 27, 18, 0), Shanghai));
        // Sat 10:00 Shanghai open, Sun 10:00 closed.
        assert!(cal.is_open(utc(2026, 11, 28, 2, 0), Shanghai));
        assert!(!cal.is_open(utc(2026, 11, 29, 2, 0), Shanghai));
    }

    #[test]
    fn holiday_and_makeup_workday() {
        let cal = sample();
        // Thu 2026-10-01 10:00 Shanghai: holiday, closed.
        assert!(!cal.is_open(utc(2026, 10, 1, 2, 0), Shanghai));
        // Sat 2026-10-10 19:00 Shanghai: make-up workday, weekday hours apply
        // (a normal Saturday would be closed at 19:00).
        assert!(cal.is_open(utc(2026, 10, 10, 11, 0), Shanghai));
        assert!(!cal.is_open(utc(2026, 10, 17, 11, 0), Shanghai));
    }

    #[test]
    fn next_open_skips_holiday_and_sunday() {
        let cal = sample();
        let open = utc(2026, 11, 24, 3, 0);
        assert_eq!(cal.next_open(open, Shanghai), Some(open));
        // Wed 2026-09-30 21:00 Shanghai -> Thu holiday -> Fri 10-02 08:00.
        assert_eq!(
            cal.next_open(utc(2026, 9, 30, 13, 0), Shanghai),
            Some(utc(2026, 10, 2, 0, 0))
        );
        // Sat 2026-11-28 18:00 Shanghai -> Sunday closed -> Mon 08:00.
        assert_eq!(
            cal.next_open(utc(2026, 11, 28, 10, 0), Shanghai),
            Some(utc(2026, 11, 30, 0, 0))
        );
        let closed = Calendar {
            weekly: Default::default(),
            ..sample()
        };
        let never = Calendar {
            workdays: BTreeSet::new(),
            ..closed
        };
        assert_eq!(never.next_open(utc(2026, 11, 28, 10, 0), Shanghai), None);
    }

    #[test]
    fn always_open_is_open() {
        let cal = Calendar::always_open();
        assert!(cal.is_open(utc(2026, 1, 1, 0, 0), Shanghai));
        assert!(cal.is_open(utc(2026, 1, 1, 15, 59), Tz::UTC));
    }
}
