use super::*;

#[test]
fn lists_take_ports_and_ranges() {
    let cases: [(&str, &[u16]); 4] = [
        ("25, 3306,8000-8002", &[25, 3306, 8000, 8001, 8002]),
        ("", &[]),
        (" 80 ,, 80-81", &[80, 81]),
        ("65535", &[65535]),
    ];
    for (raw, want) in cases {
        let got: Vec<u16> = parse_set(raw).unwrap().into_iter().collect();
        assert_eq!(got, want, "{raw:?}");
    }
    assert_eq!(
        parse_ranges("80,90-95").unwrap(),
        [PortRange { lo: 80, hi: 80 }, PortRange { lo: 90, hi: 95 }]
    );
}

#[test]
fn bad_items_are_named() {
    let cases = [
        ("0", InvalidPort::NotAPort("0".into())),
        ("70000", InvalidPort::NotAPort("70000".into())),
        ("a", InvalidPort::NotAPort("a".into())),
        ("1-", InvalidPort::NotAPort("".into())),
        ("10-5", InvalidPort::Backwards("10-5".into())),
    ];
    for (raw, want) in cases {
        assert_eq!(parse_set(raw), Err(want.clone()), "{raw:?}");
        assert_eq!(raw.parse::<PortRange>(), Err(want), "{raw:?}");
    }
    assert_eq!(
        InvalidPort::Backwards("10-5".into()).to_string(),
        "range \"10-5\" is backwards"
    );
}
