use std::net::IpAddr;

use trellis_api::{ports, well_known};

use super::*;
use crate::test_util::{FAKE_ANCHORS_PEM, mk_env};

fn parse(env: &HashMap<String, String>) -> Result<Config, Error> {
    Config::parse(env)
}

fn with(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env = mk_env(FAKE_ANCHORS_PEM);
    for (k, v) in pairs {
        env.insert((*k).to_string(), (*v).to_string());
    }
    env
}

fn without(name: &str) -> HashMap<String, String> {
    let mut env = mk_env(FAKE_ANCHORS_PEM);
    env.remove(name);
    env
}

fn err(env: &HashMap<String, String>) -> String {
    parse(env).expect_err("config must be rejected").to_string()
}

#[test]
fn every_variable_has_the_proxy_prefix() {
    for name in ALL_ENV {
        assert!(name.starts_with(well_known::PROXY_ENV_PREFIX), "{name}");
    }
}

#[test]
fn every_variable_is_listed_once() {
    let names = ALL_ENV;
    let distinct: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "{names:?}");
    assert_eq!(names.len(), 47, "{names:?}");
    for name in [
        ENV_DESTINATION_SVC_ADDR,
        ENV_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION,
        ENV_IDENTITY_MAX_REFRESH,
        ENV_OUTBOUND_LISTEN_ADDRS,
        ENV_TAP_SVC_NAME,
        ENV_SHUTDOWN_GRACE_PERIOD,
        ENV_CORES,
    ] {
        assert!(names.contains(&name), "{name}");
    }
}

#[test]
fn minimal_env_gets_the_contract_defaults() {
    let config = parse(&mk_env(FAKE_ANCHORS_PEM)).unwrap();
    assert_eq!(config.admin_listen_addr, "127.0.0.1:4191".parse().unwrap());
    assert_eq!(config.inbound.listen_addr, "0.0.0.0:4143".parse().unwrap());
    assert_eq!(
        config.outbound.listen_addrs,
        vec!["127.0.0.1:4140".parse().unwrap()]
    );
    assert_eq!(config.inbound.detect_timeout, Duration::from_secs(10));
    assert_eq!(config.inbound.connect_timeout, Duration::from_millis(300));
    assert_eq!(config.outbound.connect_timeout, Duration::from_secs(1));
    assert_eq!(
        config.inbound.discovery_idle_timeout,
        Duration::from_secs(90)
    );
    assert_eq!(
        config.outbound.discovery_idle_timeout,
        Duration::from_secs(5)
    );
    assert_eq!(config.default_policy, DefaultPolicy::AllUnauthenticated);
    assert_eq!(config.shutdown_grace_period, Duration::from_secs(120));
    assert_eq!(
        config.profile_suffixes,
        vec!["svc.cluster.local.".to_string()]
    );
    assert_eq!(config.control_stream, ControlStreamConfig::default());
    assert!(config.inbound.ports.contains(&well_known::PROXY_ADMIN_PORT));
    assert_eq!(config.log.format, LogFormat::Plain);
    assert!(config.tap_svc_name.is_none());
}

#[test]
fn required_variables_are_named_when_missing() {
    for name in [
        ENV_DESTINATION_SVC_ADDR,
        ENV_POLICY_SVC_ADDR,
        ENV_POLICY_WORKLOAD,
        ENV_IDENTITY_DIR,
        ENV_IDENTITY_TRUST_ANCHORS,
        ENV_IDENTITY_TOKEN_FILE,
        ENV_IDENTITY_SVC_ADDR,
        ENV_IDENTITY_LOCAL_NAME,
    ] {
        let msg = err(&without(name));
        assert!(msg.contains(name), "{name}: {msg}");
        assert!(msg.contains("required"), "{name}: {msg}");
    }
}

#[test]
fn control_addr_needs_a_name_unless_loopback() {
    let env = with(&[(
        ENV_DESTINATION_SVC_ADDR,
        "dst.trellis-system.svc.cluster.local.:8086",
    )]);
    let mut env = env;
    env.remove(ENV_DESTINATION_SVC_NAME);
    assert!(err(&env).contains(ENV_DESTINATION_SVC_NAME));

    for loopback in ["127.0.0.1:8086", "[::1]:8086", "localhost.:8086"] {
        let mut env = with(&[(ENV_DESTINATION_SVC_ADDR, loopback)]);
        env.remove(ENV_DESTINATION_SVC_NAME);
        let config = parse(&env).unwrap();
        assert!(config.destination.is_loopback(), "{loopback}");
        assert_eq!(config.destination.port, 8086);
    }

    // Without the trailing dot, `localhost` is a name and needs an identity.
    let mut env = with(&[(ENV_DESTINATION_SVC_ADDR, "localhost:8086")]);
    env.remove(ENV_DESTINATION_SVC_NAME);
    assert!(err(&env).contains(ENV_DESTINATION_SVC_NAME));
}

#[test]
fn control_addr_rejects_bad_forms() {
    for bad in ["dst", "dst:0", "dst:99999", ":8086", "::1:8086", "dst:http"] {
        let msg = err(&with(&[(ENV_POLICY_SVC_ADDR, bad)]));
        assert!(msg.contains(ENV_POLICY_SVC_ADDR), "{bad}: {msg}");
    }
    let config = parse(&with(&[(ENV_POLICY_SVC_ADDR, "[fd00::1]:8090")])).unwrap();
    assert_eq!(config.policy.host, "fd00::1");
    assert_eq!(config.policy.authority(), "[fd00::1]:8090");
}

#[test]
fn durations_take_every_unit_and_reject_others() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("3s"), Ok(Duration::from_secs(3)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("365d"), Ok(Duration::from_secs(365 * 86400)));
    // Go's grammar: fractions, compound values, small units and a bare zero.
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("300us"), Ok(Duration::from_micros(300)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    for bad in [
        "10",
        "s",
        "-1s",
        "10sec",
        "99999999999999999999d",
        "1d12h",
        "",
        ".",
        "+",
        "1µs",
        "1μs",
        "é",
        "0.1234567890123456789s",
        "12345678901234567890ns",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    assert!(parse_duration("-1s").unwrap_err().contains("negative"));
    let msg = err(&with(&[(ENV_INBOUND_DETECT_TIMEOUT, "10")]));
    assert!(
        msg.contains(ENV_INBOUND_DETECT_TIMEOUT) && msg.contains("unit"),
        "{msg}"
    );
    let config = parse(&with(&[
        (ENV_OUTBOUND_DETECT_TIMEOUT, "365d"),
        (ENV_CONTROL_STREAM_INITIAL_TIMEOUT, "3s"),
        (ENV_SHUTDOWN_GRACE_PERIOD, "5s"),
    ]))
    .unwrap();
    assert_eq!(
        config.outbound.detect_timeout,
        Duration::from_secs(365 * 86400)
    );
    assert_eq!(
        config.control_stream.initial_timeout,
        Some(Duration::from_secs(3))
    );
    assert_eq!(config.shutdown_grace_period, Duration::from_secs(5));
}

#[test]
fn port_lists_take_ranges() {
    assert_eq!(
        ports::parse_set("25, 3306,8000-8002")
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        vec![25, 3306, 8000, 8001, 8002]
    );
    for bad in ["0", "70000", "10-5", "a", "1-"] {
        assert!(ports::parse_set(bad).is_err(), "{bad}");
    }
    let config = parse(&with(&[
        (ENV_INBOUND_PORTS, "8080,9090"),
        (
            ENV_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION,
            "3306,5432-5433",
        ),
    ]))
    .unwrap();
    assert_eq!(
        config.inbound.ports.into_iter().collect::<Vec<_>>(),
        vec![4191, 8080, 9090]
    );
    assert_eq!(
        config.inbound.opaque_ports.into_iter().collect::<Vec<_>>(),
        vec![3306, 5432, 5433]
    );
    let msg = err(&with(&[(ENV_INBOUND_PORTS, "80,x")]));
    assert!(msg.contains(ENV_INBOUND_PORTS), "{msg}");
}

#[test]
fn default_policy_names_are_checked() {
    let config = parse(&with(&[(ENV_INBOUND_DEFAULT_POLICY, "deny")])).unwrap();
    assert_eq!(config.default_policy, DefaultPolicy::Deny);
    let msg = err(&with(&[(ENV_INBOUND_DEFAULT_POLICY, "allow-all")]));
    assert!(
        msg.contains("all-unauthenticated") && msg.contains("audit"),
        "{msg}"
    );
    // cluster-* defaults need the cluster networks.
    let msg = err(&with(&[(
        ENV_INBOUND_DEFAULT_POLICY,
        "cluster-authenticated",
    )]));
    assert!(msg.contains(ENV_POLICY_CLUSTER_NETWORKS), "{msg}");
    let config = parse(&with(&[
        (ENV_INBOUND_DEFAULT_POLICY, "cluster-authenticated"),
        (ENV_POLICY_CLUSTER_NETWORKS, "10.0.0.0/8, fd00::/8"),
    ]))
    .unwrap();
    assert_eq!(config.cluster_networks.len(), 2);
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(config.cluster_networks[0].contains(&ip("10.1.2.3")));
    assert!(!config.cluster_networks[0].contains(&ip("11.1.2.3")));
    assert!(config.cluster_networks[1].contains(&ip("fd00::5")));
    let msg = err(&with(&[(ENV_POLICY_CLUSTER_NETWORKS, "10.0.0.0/33")]));
    assert!(msg.contains(ENV_POLICY_CLUSTER_NETWORKS), "{msg}");
    // A bare address is a network of one.
    let config = parse(&with(&[(ENV_DESTINATION_PROFILE_NETWORKS, "10.1.2.3")])).unwrap();
    assert_eq!(
        config.profile_networks,
        ["10.1.2.3/32".parse::<IpNet>().unwrap()]
    );
}

#[test]
fn identity_names_and_anchors_are_checked() {
    let msg = err(&with(&[(ENV_IDENTITY_TRUST_ANCHORS, "not pem")]));
    assert!(msg.contains(ENV_IDENTITY_TRUST_ANCHORS), "{msg}");
    let msg = err(&with(&[(ENV_IDENTITY_LOCAL_NAME, "bad_name!")]));
    assert!(msg.contains(ENV_IDENTITY_LOCAL_NAME), "{msg}");

    let mut env = without(ENV_IDENTITY_LOCAL_NAME);
    env.insert(
        ENV_IDENTITY_SERVER_ID.into(),
        "a.b.serviceaccount.identity.trellis.x".into(),
    );
    env.insert(
        ENV_IDENTITY_SERVER_NAME.into(),
        "a.b.serviceaccount.identity.trellis.x".into(),
    );
    let config = parse(&env).unwrap();
    assert_eq!(
        config.identity.local_name,
        "a.b.serviceaccount.identity.trellis.x"
    );
    env.insert(ENV_IDENTITY_SERVER_NAME.into(), "other".into());
    assert!(err(&env).contains(ENV_IDENTITY_SERVER_NAME));

    let msg = err(&with(&[
        (ENV_IDENTITY_MIN_REFRESH, "1h"),
        (ENV_IDENTITY_MAX_REFRESH, "1m"),
    ]));
    assert!(msg.contains(ENV_IDENTITY_MAX_REFRESH), "{msg}");
}

#[test]
fn listen_addrs_logs_and_flags_are_checked() {
    let config = parse(&with(&[
        (ENV_OUTBOUND_LISTEN_ADDRS, "127.0.0.1:4140,[::1]:4140"),
        (ENV_ADMIN_LISTEN_ADDR, "0.0.0.0:4191"),
        (ENV_LOG_FORMAT, "json"),
        (ENV_ACCESS_LOG, "apache"),
        (ENV_INGRESS_MODE, "true"),
    ]))
    .unwrap();
    assert_eq!(config.outbound.listen_addrs.len(), 2);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.access_log, Some(AccessLogFormat::Apache));
    assert!(config.ingress_mode);
    for (name, bad) in [
        (ENV_ADMIN_LISTEN_ADDR, "localhost:4191"),
        (ENV_LOG_FORMAT, "xml"),
        (ENV_ACCESS_LOG, "csv"),
        (ENV_INGRESS_MODE, "yes"),
        (ENV_INBOUND_IPS, "10.0.0.300"),
    ] {
        let msg = err(&with(&[(name, bad)]));
        assert!(msg.contains(name), "{name}: {msg}");
    }
}

#[test]
fn cores_default_to_one_and_are_bounded() {
    assert_eq!(parse(&mk_env(FAKE_ANCHORS_PEM)).unwrap().cores, 1);
    assert_eq!(parse(&with(&[(ENV_CORES, "4")])).unwrap().cores, 4);
    for bad in ["0", "-1", "1.5", "two", "65"] {
        let msg = err(&with(&[(ENV_CORES, bad)]));
        assert!(
            msg.contains(ENV_CORES) && msg.contains("from 1 to 64"),
            "{bad}: {msg}"
        );
    }
}
