use std::time;

use super::*;

/// Go durations, what they parse to, and whether the CRD pattern (and so `to_std`) accepts
/// them too; `parse_go` reads every one.
#[test]
fn parses_go_style_durations() {
    let cases = [
        ("500ms", time::Duration::from_millis(500), true),
        ("30s", time::Duration::from_secs(30), true),
        ("5m", time::Duration::from_secs(300), true),
        ("1h30m", time::Duration::from_secs(5400), true),
        ("1.5h", time::Duration::from_secs(5400), true),
        ("8760h", time::Duration::from_secs(8760 * 3600), true),
        ("300ms", time::Duration::from_millis(300), false),
        ("2h45m", time::Duration::from_secs(9900), false),
        ("1us", time::Duration::from_micros(1), false),
        ("3ns", time::Duration::from_nanos(3), false),
        ("+5s", time::Duration::from_secs(5), false),
        ("0", time::Duration::ZERO, false),
        (".5s", time::Duration::from_millis(500), false),
        ("1.s", time::Duration::from_secs(1), false),
        ("-0s", time::Duration::ZERO, false),
    ];
    for (input, expected, in_crd_grammar) in cases {
        assert_eq!(parse_go(input).unwrap(), expected, "{input}");
        if in_crd_grammar {
            assert_eq!(Duration::new(input).to_std().unwrap(), expected, "{input}");
        }
    }
}

#[test]
fn rejects_what_the_pattern_rejects() {
    for input in [
        "",
        "30",
        "s",
        "1d",
        "1.s",
        ".5s",
        "20 seconds",
        "-1s",
        "1h 30m",
    ] {
        assert!(
            Duration::new(input).to_std().is_err(),
            "{input:?} should be rejected"
        );
    }
}

#[test]
fn guard_uses_a_raw_cel_string() {
    let rule = cel_shorter_than("self.a", "self.b");
    assert!(rule.contains("self.a.matches(r'^"), "{rule}");
    assert!(
        rule.ends_with("duration(self.a) < duration(self.b)"),
        "{rule}"
    );
}

#[test]
fn parse_go_rejects_negatives_and_inputs_that_would_trip_the_parser() {
    assert!(matches!(
        parse_go("-1s"),
        Err(Error::NegativeDuration { value }) if value == "-1s"
    ));
    for input in [
        "",
        "1µs",
        "1μs",
        "5 s",
        "1d",
        "1",
        "1.0000000000000000000s",
        "9999999999999999999h",
        "2000000h",
    ] {
        assert!(
            matches!(parse_go(input), Err(Error::InvalidDuration { .. })),
            "{input:?} should be rejected"
        );
    }
}

#[test]
fn to_std_accepts_exactly_what_the_pattern_accepts() {
    let pattern = regex::Regex::new(DURATION_PATTERN).unwrap();
    for input in [
        "500ms",
        "30s",
        "5m",
        "1h30m",
        "1.5h",
        "8760h",
        "87600h",
        "0s",
        "0.001ms",
        "123456789.123456789ms",
        "1h1m1s1ms",
        "1",
        "1ns",
        "1us",
        "+1s",
        "0",
        ".5s",
        "1.s",
        "-1s",
        "1h 30m",
        "1H",
        "",
    ] {
        let parsed = Duration::new(input).to_std();
        assert_eq!(pattern.is_match(input), parsed.is_ok(), "{input:?}");
        if let Ok(value) = parsed {
            assert_eq!(
                parse_go(input).unwrap(),
                value,
                "{input:?}: same as Go's grammar"
            );
        }
    }
}
