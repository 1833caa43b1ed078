//! Property tests of the limit-string parser (SPEC §2).

use palisade::rate_limit::{Limits, Rate, TimeUnit};
use proptest::prelude::*;

fn unit() -> impl Strategy<Value = TimeUnit> {
    prop::sample::select(TimeUnit::ALL.to_vec())
}

fn rate() -> impl Strategy<Value = Rate> {
    (1u64..1_000_000, 1u64..100, unit())
        .prop_map(|(count, multiple, unit)| Rate::new(count, multiple, unit).expect("in range"))
}

/// Writes `rate` in one of the accepted spellings.
fn spelling(rate: Rate, style: u8, plural: bool, upper: bool) -> String {
    let mut unit = rate.unit().name().to_owned();
    if plural {
        unit.push('s');
    }
    if upper {
        unit = unit.to_uppercase();
    }
    let (c, m) = (rate.count(), rate.multiple());
    match (style % 4, m) {
        (0, 1) => format!("{c}/{unit}"),
        (0, _) | (1, _) => format!("{c}/{m} {unit}"),
        (2, 1) => format!("{c} per {unit}"),
        (2, _) => format!("{c} per {m} {unit}"),
        _ => format!("  {c} PER {m}{unit} "),
    }
}

proptest! {
    #[test]
    fn display_then_parse_gives_the_same_rate(rate in rate()) {
        let text = rate.to_string();
        prop_assert_eq!(text.parse::<Rate>(), Ok(rate));
    }

    #[test]
    fn every_spelling_parses_to_the_same_rate(
        rate in rate(), style in 0u8..4, plural: bool, upper: bool,
    ) {
        let text = spelling(rate, style, plural, upper);
        prop_assert_eq!(text.parse::<Rate>(), Ok(rate), "{}", text);
    }

    #[test]
    fn several_limits_round_trip_with_any_separator(
        rates in prop::collection::vec(rate(), 1..5), sep in prop::sample::select(vec![";", ",", "|", " ; "]),
    ) {
        let text = rates.iter().map(ToString::to_string).collect::<Vec<_>>().join(sep);
        let limits: Limits = text.parse().expect("valid");
        prop_assert_eq!(limits.rates(), &rates[..]);
        prop_assert_eq!(limits.to_string().parse::<Limits>(), Ok(limits));
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,40}") {
        let _ = text.parse::<Limits>();
    }

    #[test]
    fn a_bad_unit_is_named_in_the_error(count in 1u64..1000, unit in "[a-z]{3,10}") {
        prop_assume!(!["second", "minute", "hour", "day", "month", "year"]
            .iter()
            .any(|u| unit == *u || unit == format!("{u}s")));
        let err = format!("{count}/{unit}").parse::<Rate>().expect_err("unknown unit");
        let quoted = format!("{unit:?}");
        prop_assert!(err.to_string().contains(&quoted), "{}", err);
    }
}
