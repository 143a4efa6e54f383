use std::time::Duration;

use clap::Parser;

use super::*;

#[test]
fn durations_parse_with_units() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert!(parse_duration("30").is_err());
    assert!(parse_duration("3d").is_err());
}

#[test]
fn roles_parse_with_defaults() {
    let config = Config::try_parse_from(["trellis-operator", "operator"]).unwrap();
    let Some(Role::Operator(operator)) = config.role else {
        panic!("operator role expected");
    };
    assert_eq!(operator.lease_duration, DEFAULT_LEASE_DURATION);
    assert_eq!(config.admin.addr.port(), 9990);
    let config = Config::try_parse_from([
        "trellis-operator",
        "all-in-one",
        "--admin-addr",
        "127.0.0.1:0",
    ])
    .unwrap();
    assert!(matches!(config.role, Some(Role::AllInOne(_))));
    assert_eq!(config.admin.addr.port(), 0);
}

#[test]
fn controller_serves_webhooks_on_the_webhook_port() {
    let config = Config::try_parse_from(["trellis-operator", "controller"]).unwrap();
    let Some(Role::Controller(controller)) = config.role else {
        panic!("controller role expected");
    };
    assert_eq!(
        controller.webhook_addr,
        DEFAULT_WEBHOOK_ADDR.parse().unwrap()
    );
    assert_eq!(
        controller.webhook_addr,
        ControllerConfig::default().webhook_addr
    );
    assert_eq!(controller.image_repository, DEFAULT_IMAGE_REPOSITORY);
    let config = Config::try_parse_from([
        "trellis-operator",
        "all-in-one",
        "--webhook-addr",
        "127.0.0.1:0",
        "--image-repository",
        "example.test/a",
        "--proxy-image-repository",
        "example.test/b",
    ])
    .unwrap();
    let Some(Role::AllInOne(all)) = config.role else {
        panic!("all-in-one role expected");
    };
    assert_eq!(all.controller.webhook_addr.port(), 0);
    assert_eq!(all.operator.image_repository, "example.test/a");
    assert_eq!(all.controller.image_repository, "example.test/b");
}

#[test]
fn the_default_replica_name_is_unique_to_the_process() {
    let config = Config::try_parse_from(["trellis-operator", "operator"]).unwrap();
    let Some(Role::Operator(operator)) = config.role else {
        panic!("operator role expected");
    };
    let name = operator.replica_name();
    assert!(
        name.ends_with(&format!("_{}", std::process::id())),
        "{name} names no process"
    );
    assert_ne!(name, DEFAULT_LEASE_NAME);
    let named = OperatorConfig::with_replica_name("trellis-operator-7d9f-abcde");
    assert_eq!(named.replica_name(), "trellis-operator-7d9f-abcde");
}
