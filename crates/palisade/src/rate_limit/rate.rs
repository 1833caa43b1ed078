//! Limit strings (`100/minute`, `5 per second`, `10 per 5 minutes`, `10/minute;1000/day`) parsed
//! into typed values (SPEC §2).
//!
//! The grammar is the one of Python's `limits` library, which the tutorial's slowapi uses:
//! `COUNT ("/" | "per") [MULTIPLE] UNIT`, where `UNIT` is `second`, `minute`, `hour`, `day`,
//! `month` (30 days) or `year` (365 days), singular or plural, case-insensitive. Several limits are
//! separated by `;`, `,` or `|` and are all enforced.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A time unit of a limit string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeUnit {
    /// One second.
    Second,
    /// 60 seconds.
    Minute,
    /// 3,600 seconds.
    Hour,
    /// 86,400 seconds.
    Day,
    /// 30 days.
    Month,
    /// 365 days.
    Year,
}

impl TimeUnit {
    /// Every unit, shortest first.
    pub const ALL: [TimeUnit; 6] = [
        Self::Second,
        Self::Minute,
        Self::Hour,
        Self::Day,
        Self::Month,
        Self::Year,
    ];

    /// The unit's length in seconds.
    pub const fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
            Self::Month => 30 * 86_400,
            Self::Year => 365 * 86_400,
        }
    }

    /// The singular name (`minute`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Month => "month",
            Self::Year => "year",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        let lower = word.to_ascii_lowercase();
        let singular = lower.strip_suffix('s').unwrap_or(&lower);
        Self::ALL.into_iter().find(|u| u.name() == singular)
    }
}

impl fmt::Display for TimeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a limit string was refused. Each variant names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseRateError {
    /// The string (or one of its `;`-separated parts) is empty.
    #[error("empty rate limit; expected e.g. \"100/minute\" or \"5 per second\"")]
    Empty,
    /// No `/` or `per` between the count and the period.
    #[error("rate limit {part:?} has no \"/\" or \"per\"; expected e.g. \"100/minute\"")]
    MissingSeparator {
        /// The limit that failed.
        part: String,
    },
    /// The count is not a whole number.
    #[error("rate limit {part:?}: count {count:?} is not a whole number")]
    InvalidCount {
        /// The limit that failed.
        part: String,
        /// The count as written.
        count: String,
    },
    /// The multiple before the unit (`5` in `10 per 5 minutes`) is not a whole number.
    #[error("rate limit {part:?}: {multiple:?} is not a whole number of units")]
    InvalidMultiple {
        /// The limit that failed.
        part: String,
        /// The multiple as written.
        multiple: String,
    },
    /// The unit is not one of second, minute, hour, day, month, year.
    #[error(
        "rate limit {part:?}: unknown unit {unit:?}; expected second, minute, hour, day, month or year"
    )]
    UnknownUnit {
        /// The limit that failed.
        part: String,
        /// The unit as written.
        unit: String,
    },
    /// A count or multiple of zero, which would block everything or divide by zero.
    #[error("rate limit {part:?}: {what} must be at least 1")]
    Zero {
        /// The limit that failed.
        part: String,
        /// `count` or `multiple`.
        what: &'static str,
    },
    /// The period is too long to represent.
    #[error("rate limit {part:?}: period is too long")]
    Overflow {
        /// The limit that failed.
        part: String,
    },
}

/// One limit: `count` requests per `multiple` × `unit` (e.g. 10 per 5 minutes).
///
/// `Display` writes the `limits` library's form, `10 per 5 minute`, which is also what the 429
/// body's `message` carries; it parses back to an equal value.
///
/// # Examples
///
/// ```
/// use palisade::rate_limit::Rate;
/// let rate: Rate = "10 per 5 minutes".parse().expect("valid");
/// assert_eq!(rate.count(), 10);
/// assert_eq!(rate.period().as_secs(), 300);
/// assert_eq!(rate.to_string(), "10 per 5 minute");
/// assert_eq!("100/minute".parse::<Rate>().expect("valid").to_string(), "100 per 1 minute");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    count: u64,
    multiple: u64,
    unit: TimeUnit,
}

/// Longest accepted period, so that microsecond arithmetic stays well inside 2^53 (exact in the
/// Lua doubles of the Redis script): 1,000 years.
const MAX_PERIOD_SECS: u64 = 1_000 * 365 * 86_400;
/// Largest accepted count, for the same reason.
const MAX_COUNT: u64 = 1_000_000_000;

impl Rate {
    /// `count` per `multiple` × `unit`. Fails on zero, or on a period over 1,000 years or a count
    /// over 10⁹.
    pub fn new(count: u64, multiple: u64, unit: TimeUnit) -> Result<Self, ParseRateError> {
        let part = || format!("{count} per {multiple} {unit}");
        if count == 0 {
            return Err(ParseRateError::Zero {
                part: part(),
                what: "count",
            });
        }
        if multiple == 0 {
            return Err(ParseRateError::Zero {
                part: part(),
                what: "multiple",
            });
        }
        if count > MAX_COUNT
            || multiple
                .checked_mul(unit.seconds())
                .is_none_or(|s| s > MAX_PERIOD_SECS)
        {
            return Err(ParseRateError::Overflow { part: part() });
        }
        Ok(Self {
            count,
            multiple,
            unit,
        })
    }

    /// Requests allowed per period.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// How many units make the period (`5` in `10 per 5 minutes`).
    pub fn multiple(&self) -> u64 {
        self.multiple
    }

    /// The unit.
    pub fn unit(&self) -> TimeUnit {
        self.unit
    }

    /// The period.
    pub fn period(&self) -> Duration {
        Duration::from_secs(self.multiple * self.unit.seconds())
    }

    /// The same rate with its count divided by `n` (at least 1): the share of one instance when
    /// `n` instances each enforce it locally.
    pub fn divided(&self, n: u32) -> Self {
        Self {
            count: (self.count / u64::from(n.max(1))).max(1),
            ..*self
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} per {} {}", self.count, self.multiple, self.unit)
    }
}

impl FromStr for Rate {
    type Err = ParseRateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let part = s.trim();
        if part.is_empty() {
            return Err(ParseRateError::Empty);
        }
        let owned = || part.to_owned();
        let (count, rest) = if let Some((c, r)) = part.split_once('/') {
            (c.trim(), r.trim())
        } else if let Some((c, r)) = split_per(part) {
            (c, r)
        } else {
            return Err(ParseRateError::MissingSeparator { part: owned() });
        };
        let count: u64 = parse_number(count).ok_or_else(|| ParseRateError::InvalidCount {
            part: owned(),
            count: count.to_owned(),
        })?;
        // `rest` is `[MULTIPLE] UNIT`, with or without a space between them (`5minutes`).
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (multiple, unit) = rest.split_at(digits_end);
        let multiple = if multiple.is_empty() {
            1
        } else {
            parse_number(multiple).ok_or_else(|| ParseRateError::InvalidMultiple {
                part: owned(),
                multiple: multiple.to_owned(),
            })?
        };
        let unit_str = unit.trim();
        let unit = TimeUnit::parse(unit_str).ok_or_else(|| ParseRateError::UnknownUnit {
            part: owned(),
            unit: unit_str.to_owned(),
        })?;
        Rate::new(count, multiple, unit).map_err(|e| match e {
            ParseRateError::Zero { what, .. } => ParseRateError::Zero {
                part: owned(),
                what,
            },
            _ => ParseRateError::Overflow { part: owned() },
        })
    }
}

/// Splits `10 per 5 minutes` at a whole-word, case-insensitive `per`.
fn split_per(s: &str) -> Option<(&str, &str)> {
    let lower = s.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find("per") {
        let at = from + i;
        let before_ok =
            lower[..at].ends_with(|c: char| c.is_ascii_whitespace() || c.is_ascii_digit());
        let after = &lower[at + 3..];
        let after_ok = after.starts_with(|c: char| c.is_ascii_whitespace() || c.is_ascii_digit());
        if before_ok && after_ok {
            return Some((s[..at].trim(), s[at + 3..].trim()));
        }
        from = at + 3;
    }
    None
}

fn parse_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// One or more [`Rate`]s, all enforced together (`10/minute;1000/day`).
///
/// # Examples
///
/// ```
/// use palisade::rate_limit::Limits;
/// let limits: Limits = "10/minute; 1000 per day".parse().expect("valid");
/// assert_eq!(limits.rates().len(), 2);
/// assert_eq!(limits.to_string(), "10 per 1 minute; 1000 per 1 day");
/// let err = "10/minute;ten/day".parse::<Limits>().expect_err("invalid");
/// assert!(err.to_string().contains("\"ten\""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Limits(Vec<Rate>);

impl Limits {
    /// Builds limits from at least one rate (`None` when `rates` is empty).
    pub fn new(rates: Vec<Rate>) -> Option<Self> {
        (!rates.is_empty()).then_some(Self(rates))
    }

    /// The rates, in the order written.
    pub fn rates(&self) -> &[Rate] {
        &self.0
    }

    /// Every rate [`divided`](Rate::divided) by `n`.
    pub fn divided(&self, n: u32) -> Self {
        Self(self.0.iter().map(|r| r.divided(n)).collect())
    }
}

impl From<Rate> for Limits {
    fn from(rate: Rate) -> Self {
        Self(vec![rate])
    }
}

impl fmt::Display for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rate) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{rate}")?;
        }
        Ok(())
    }
}

impl FromStr for Limits {
    type Err = ParseRateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(ParseRateError::Empty);
        }
        s.split([';', ',', '|'])
            .map(str::parse)
            .collect::<Result<Vec<Rate>, _>>()
            .map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Rate {
        s.parse().expect("valid rate")
    }

    #[test]
    fn the_documented_forms_parse() {
        assert_eq!(
            rate("100/minute"),
            Rate::new(100, 1, TimeUnit::Minute).expect("ok")
        );
        assert_eq!(
            rate("5 per second"),
            Rate::new(5, 1, TimeUnit::Second).expect("ok")
        );
        assert_eq!(
            rate("10 per 5 minutes"),
            Rate::new(10, 5, TimeUnit::Minute).expect("ok")
        );
        assert_eq!(
            rate("10/5minutes"),
            Rate::new(10, 5, TimeUnit::Minute).expect("ok")
        );
        assert_eq!(
            rate(" 2 PER Hours "),
            Rate::new(2, 1, TimeUnit::Hour).expect("ok")
        );
        assert_eq!(rate("1/year").period().as_secs(), 365 * 86_400);
        let limits: Limits = "10/minute;1000/day,5/second|1 per month"
            .parse()
            .expect("ok");
        assert_eq!(limits.rates().len(), 4);
    }

    #[test]
    fn errors_name_the_bad_part() {
        let err = "10/fortnight".parse::<Rate>().expect_err("bad unit");
        assert_eq!(
            err,
            ParseRateError::UnknownUnit {
                part: "10/fortnight".into(),
                unit: "fortnight".into()
            }
        );
        assert!(matches!(
            "x/minute".parse::<Rate>(),
            Err(ParseRateError::InvalidCount { .. })
        ));
        assert!(matches!(
            "10 minute".parse::<Rate>(),
            Err(ParseRateError::MissingSeparator { .. })
        ));
        assert!(matches!(
            "0/minute".parse::<Rate>(),
            Err(ParseRateError::Zero { what: "count", .. })
        ));
        assert!(matches!(
            "1/0 minute".parse::<Rate>(),
            Err(ParseRateError::Zero {
                what: "multiple",
                ..
            })
        ));
        assert!(matches!(
            "-1/minute".parse::<Rate>(),
            Err(ParseRateError::InvalidCount { .. })
        ));
        assert!(matches!("".parse::<Limits>(), Err(ParseRateError::Empty)));
        assert!(matches!(
            "1/minute;".parse::<Limits>(),
            Err(ParseRateError::Empty)
        ));
        assert!(matches!(
            "1/99999999999 years".parse::<Rate>(),
            Err(ParseRateError::Overflow { .. })
        ));
    }
}
