//! The callback survey of the 回访方案 seed, as data, and the exceptions it
//! produces.
//!
//! Answer codes are the keys the customer presses. Satisfaction follows the
//! seed's order, 1 非常满意 … 5 很不满意. (The `surveys` table stores it the
//! other way round, 1 很不满意 … 5 非常满意: use
//! [`Satisfaction::store_value`].)
//!
//! Decision: besides 不太满意/很不满意, site not cleaned and fees not as
//! charged (不属实), a 不满意 answer to the attitude question also opens a
//! case: the seed registers every 不满意 result.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::rules::local_to_utc;

/// Greeting (问候语); `{company}` and `{title}` are filled by [`greeting`].
pub const GREETING: &str = "您好!我是{company}的回访员,请问这是{title}家吗?能打扰您一会吗?";

/// The greeting for a customer: `title` is e.g. 王先生 / 李女士.
pub fn greeting(company: &str, title: &str) -> String {
    GREETING
        .replace("{company}", company)
        .replace("{title}", title)
}

/// One survey question with its keypad choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Question {
    /// Stable key (also the `surveys` column).
    pub key: &'static str,
    pub prompt: &'static str,
    /// (key pressed, meaning).
    pub choices: &'static [(u8, &'static str)],
}

/// The seed's questions, in the order they are asked.
pub const QUESTIONS: [Question; 4] = [
    Question {
        key: "attitude",
        prompt: "请问您对师傅的服务态度是否满意?满意请按1,一般请按2,不满意请按3。",
        choices: &[(1, "满意"), (2, "一般"), (3, "不满意")],
    },
    Question {
        key: "cleaned",
        prompt: "师傅完工后是否清理了现场?是请按1,否请按2。",
        choices: &[(1, "是"), (2, "否")],
    },
    Question {
        key: "fees_ok",
        prompt: "师傅收取的费用是否属实?属实请按1,不属实请按2。",
        choices: &[(1, "属实"), (2, "不属实")],
    },
    Question {
        key: "satisfaction",
        prompt:
            "您对本次服务的总体评价:非常满意请按1,满意请按2,一般请按3,不太满意请按4,很不满意请按5。",
        choices: &[
            (1, "非常满意"),
            (2, "满意"),
            (3, "一般"),
            (4, "不太满意"),
            (5, "很不满意"),
        ],
    },
];

/// 服务态度.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attitude {
    Satisfied = 1,
    Average = 2,
    Dissatisfied = 3,
}

/// 总体满意度, five levels, seed order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Satisfaction {
    VerySatisfied = 1,
    Satisfied = 2,
    Neutral = 3,
    Dissatisfied = 4,
    VeryDissatisfied = 5,
}

impl Satisfaction {
    pub const ALL: [Self; 5] = [
        Self::VerySatisfied,
        Self::Satisfied,
        Self::Neutral,
        Self::Dissatisfied,
        Self::VeryDissatisfied,
    ];

    /// From the key pressed (1..=5).
    pub fn from_key(k: u8) -> Option<Self> {
        Self::ALL.get(usize::from(k).checked_sub(1)?).copied()
    }

    pub fn key(self) -> u8 {
        self as u8
    }

    pub fn label(self) -> &'static str {
        ["非常满意", "满意", "一般", "不太满意", "很不满意"][self as usize - 1]
    }

    /// Value in the `surveys.satisfaction` column (1 很不满意 … 5 非常满意).
    pub fn store_value(self) -> i64 {
        6 - i64::from(self.key())
    }
}

impl Attitude {
    pub fn from_key(k: u8) -> Option<Self> {
        match k {
            1 => Some(Self::Satisfied),
            2 => Some(Self::Average),
            3 => Some(Self::Dissatisfied),
            _ => None,
        }
    }
}

/// Answers collected so far; `None` = not asked / not answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyAnswers {
    pub attitude: Option<Attitude>,
    pub site_cleaned: Option<bool>,
    pub fees_correct: Option<bool>,
    pub satisfaction: Option<Satisfaction>,
    pub remarks: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SurveyError {
    #[error("no survey question {0:?}")]
    UnknownQuestion(String),
    #[error("key {key} is not a choice for {question}")]
    BadKey { question: &'static str, key: u8 },
}

impl SurveyAnswers {
    /// Records the key pressed for a question (see [`QUESTIONS`]).
    pub fn record(&mut self, question: &str, key: u8) -> Result<(), SurveyError> {
        let q = QUESTIONS
            .iter()
            .find(|q| q.key == question)
            .ok_or_else(|| SurveyError::UnknownQuestion(question.to_string()))?;
        let bad = SurveyError::BadKey {
            question: q.key,
            key,
        };
        let yes_no = |k| match k {
            1 => Some(true),
            2 => Some(false),
            _ => None,
        };
        match q.key {
            "attitude" => self.attitude = Some(Attitude::from_key(key).ok_or(bad)?),
            "cleaned" => self.site_cleaned = Some(yes_no(key).ok_or(bad)?),
            "fees_ok" => self.fees_correct = Some(yes_no(key).ok_or(bad)?),
            _ => self.satisfaction = Some(Satisfaction::from_key(key).ok_or(bad)?),
        }
        Ok(())
    }

    /// All four questions answered: the callback counts as completed.
    pub fn is_complete(&self) -> bool {
        self.attitude.is_some()
            && self.site_cleaned.is_some()
            && self.fees_correct.is_some()
            && self.satisfaction.is_some()
    }
}

/// Whether the answers open a case for the responsible department manager:
/// 不太满意 / 很不满意, site not cleaned, fees not as charged, or attitude
/// 不满意.
pub fn is_dissatisfied(a: &SurveyAnswers) -> bool {
    matches!(
        a.satisfaction,
        Some(Satisfaction::Dissatisfied | Satisfaction::VeryDissatisfied)
    ) || a.site_cleaned == Some(false)
        || a.fees_correct == Some(false)
        || a.attitude == Some(Attitude::Dissatisfied)
}

/// A callback exception (不满意/不属实) case, as far as the summary needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionCase {
    pub region: String,
    pub opened_at: DateTime<Utc>,
    /// When the department reported it fixed; `None` while open.
    pub fixed_at: Option<DateTime<Utc>>,
}

/// A week `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeekRange {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl WeekRange {
    /// Monday 00:00 to the next Monday 00:00, local time in `tz`, of the
    /// week that contains `date`.
    pub fn containing(date: NaiveDate, tz: Tz) -> Self {
        let monday = date.week(Weekday::Mon).first_day();
        let midnight = chrono::NaiveTime::MIN;
        Self {
            start: local_to_utc(tz, monday, midnight),
            end: local_to_utc(tz, monday + Duration::days(7), midnight),
        }
    }

    /// The week before the one containing `date`: what Friday's summary
    /// (每周五汇总上周回访异常) covers.
    pub fn previous(date: NaiveDate, tz: Tz) -> Self {
        Self::containing(date - Duration::days(7), tz)
    }
}

/// Counts of one region in the weekly exception summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RegionExceptions {
    /// Opened during the week.
    pub opened: u32,
    /// Fixed during the week (opened then or earlier).
    pub fixed: u32,
    /// Opened before the week's end and not fixed by then.
    pub still_open: u32,
}

/// The Friday summary: per region, sorted by region name.
pub fn weekly_exceptions(
    cases: &[ExceptionCase],
    week: WeekRange,
) -> BTreeMap<String, RegionExceptions> {
    let mut out: BTreeMap<String, RegionExceptions> = BTreeMap::new();
    let within = |t: DateTime<Utc>| week.start <= t && t < week.end;
    for c in cases {
        let opened = within(c.opened_at);
        let fixed = c.fixed_at.is_some_and(within);
        let still_open = c.opened_at < week.end && c.fixed_at.is_none_or(|f| f >= week.end);
        if !(opened || fixed || still_open) {
            continue;
        }
        let e = out.entry(c.region.clone()).or_default();
        e.opened += u32::from(opened);
        e.fixed += u32::from(fixed);
        e.still_open += u32::from(still_open);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sh(m: u32, d: u32, h: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2024, m, d, h, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn questions_match_the_seed() {
        let sat = QUESTIONS.iter().find(|q| q.key == "satisfaction").unwrap();
        let labels: Vec<&str> = sat.choices.iter().map(|c| c.1).collect();
        assert_eq!(labels, ["非常满意", "满意", "一般", "不太满意", "很不满意"]);
        for s in Satisfaction::ALL {
            assert_eq!(sat.choices[usize::from(s.key()) - 1].1, s.label());
        }
        assert_eq!(Satisfaction::VerySatisfied.store_value(), 5);
        assert_eq!(Satisfaction::VeryDissatisfied.store_value(), 1);
        assert_eq!(
            greeting("中亮电器", "王先生"),
            "您好!我是中亮电器的回访员,请问这是王先生家吗?能打扰您一会吗?"
        );
    }

    #[test]
    fn recording_and_dissatisfaction() {
        let mut a = SurveyAnswers::default();
        a.record("attitude", 1).unwrap();
        a.record("cleaned", 1).unwrap();
        a.record("fees_ok", 1).unwrap();
        assert!(!a.is_complete());
        a.record("satisfaction", 2).unwrap();
        assert!(a.is_complete());
        assert!(!is_dissatisfied(&a));
        a.record("satisfaction", 3).unwrap();
        assert!(!is_dissatisfied(&a), "一般 is not a complaint");
        for (q, k) in [
            ("satisfaction", 4),
            ("satisfaction", 5),
            ("cleaned", 2),
            ("fees_ok", 2),
            ("attitude", 3),
        ] {
            let mut b = a.clone();
            b.record(q, k).unwrap();
            assert!(is_dissatisfied(&b), "{q}={k}");
        }
        assert_eq!(
            a.record("satisfaction", 6),
            Err(SurveyError::BadKey {
                question: "satisfaction",
                key: 6
            })
        );
        assert!(a.record("cleaned", 0).is_err());
        assert!(matches!(
            a.record("x", 1),
            Err(SurveyError::UnknownQuestion(_))
        ));
    }

    #[test]
    fn weekly_summary_per_region() {
        let tz = chrono_tz::Asia::Shanghai;
        // Friday 15 March 2024 summarises Mon 4 .. Sun 10 March.
        let week = WeekRange::previous(NaiveDate::from_ymd_opt(2024, 3, 15).unwrap(), tz);
        assert_eq!(week.start, sh(3, 4, 0));
        assert_eq!(week.end, sh(3, 11, 0));
        let case = |region: &str, opened, fixed| ExceptionCase {
            region: region.into(),
            opened_at: opened,
            fixed_at: fixed,
        };
        let cases = [
            case("杭州", sh(3, 5, 10), None),               // opened, still open
            case("杭州", sh(3, 6, 10), Some(sh(3, 8, 10))), // opened and fixed
            case("杭州", sh(2, 28, 10), Some(sh(3, 4, 9))), // older, fixed this week
            case("宁波", sh(2, 20, 10), None),              // older, still open
            case("宁波", sh(3, 10, 23), Some(sh(3, 11, 9))), // fixed after the week
            case("温州", sh(2, 1, 10), Some(sh(2, 2, 10))), // nothing to do with it
            case("温州", sh(3, 11, 0), None),               // next week
        ];
        let s = weekly_exceptions(&cases, week);
        assert_eq!(
            s["杭州"],
            RegionExceptions {
                opened: 2,
                fixed: 2,
                still_open: 1
            }
        );
        assert_eq!(
            s["宁波"],
            RegionExceptions {
                opened: 1,
                fixed: 0,
                still_open: 2
            }
        );
        assert!(!s.contains_key("温州"));
    }
}
