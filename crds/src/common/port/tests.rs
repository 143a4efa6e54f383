use super::*;

#[test]
fn port_range_bounds() {
    assert_eq!(PortRange::Port(25).bounds().unwrap(), (25, 25));
    assert_eq!(
        PortRange::Range("3306".into()).bounds().unwrap(),
        (3306, 3306)
    );
    assert_eq!(
        PortRange::Range("4000-4100".into()).bounds().unwrap(),
        (4000, 4100)
    );
    for bad in ["0", "65536", "10-5", "a-b", "", "1-2-3", "-5"] {
        assert!(PortRange::Range(bad.into()).bounds().is_err(), "{bad:?}");
    }
    assert!(PortRange::Port(0).bounds().is_err());
    assert!(PortRange::Port(70000).bounds().is_err());
}

#[test]
fn ports_read_numbers_and_names() {
    let port: Port = serde_json::from_str("8080").unwrap();
    assert_eq!(port, Port::Number(8080));
    let port: Port = serde_json::from_str("\"http\"").unwrap();
    assert_eq!(port, Port::Name("http".into()));
    let ranges: Vec<PortRange> = serde_json::from_str(r#"[25, "4000-4100"]"#).unwrap();
    assert_eq!(
        ranges,
        vec![PortRange::Port(25), PortRange::Range("4000-4100".into())]
    );
}

#[test]
fn ports_display_as_written_and_have_int_or_string_schemas() {
    assert_eq!(Port::Number(8080).to_string(), "8080");
    assert_eq!(Port::Name("admin-http".into()).to_string(), "admin-http");
    assert_eq!(PortRange::Port(3306).to_string(), "3306");
    assert_eq!(
        PortRange::Range("4000-4100".into()).to_string(),
        "4000-4100"
    );

    let schema = schemars::SchemaGenerator::default().into_root_schema_for::<PortRange>();
    let schema = schema.as_value();
    assert_eq!(schema["x-kubernetes-int-or-string"], true, "{schema}");
    assert_eq!(schema["maxLength"], 11, "{schema}");
    assert_eq!(
        schema["x-kubernetes-validations"][0]["rule"], PORT_RANGE_RULE,
        "{schema}"
    );
}
