use std::time;

use super::*;

#[test]
fn parses_go_style_durations() {
    let cases = [
        ("500ms", time::Duration::from_millis(500)),
        ("30s", time::Duration::from_secs(30)),
        ("5m", time::Duration::from_secs(300)),
        ("1h30m", time::Duration::from_secs(5400)),
        ("1.5h", time::Duration::from_secs(5400)),
        ("8760h", time::Duration::from_secs(8760 * 3600)),
    ];
    for (input, expected) in cases {
        assert_eq!(Duration::new(input).to_std().unwrap(), expected, "{input}");
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
