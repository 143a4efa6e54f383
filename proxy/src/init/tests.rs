use std::{
    collections::BTreeMap,
    os::unix::process::ExitStatusExt,
    process::{ExitStatus, Output},
};

use parking_lot::Mutex;

use super::*;

fn rules(steps: &[Step], chain: &str) -> Vec<String> {
    steps
        .iter()
        .filter_map(|s| match s {
            Step::Append(c, rule) if *c == chain => Some(rule.join(" ")),
            _ => None,
        })
        .collect()
}

#[test]
fn default_plan_follows_the_contract() {
    let steps = plan(&Options::default(), Family::V4);
    assert_eq!(steps[0], Step::Chain(REDIRECT_CHAIN));
    assert_eq!(
        rules(&steps, REDIRECT_CHAIN),
        vec![
            "-p tcp -m multiport --dports 4190,4191 -j RETURN -m comment --comment proxy-init/ignore-inbound-ports-4190,4191",
            "-p tcp -j REDIRECT --to-port 4143 -m comment --comment proxy-init/redirect-all-incoming-to-proxy-port-4143",
        ]
    );
    assert_eq!(
        rules(&steps, OUTPUT_CHAIN),
        vec![
            "-m owner --uid-owner 2102 -j RETURN -m comment --comment proxy-init/ignore-proxy-user-id-2102",
            "-o lo -j RETURN -m comment --comment proxy-init/ignore-loopback",
            "-p tcp -j REDIRECT --to-port 4140 -m comment --comment proxy-init/redirect-all-outgoing-to-proxy-port-4140",
        ]
    );
    let jumps: Vec<_> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Jump { from, to, .. } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        jumps,
        vec![("PREROUTING", REDIRECT_CHAIN), ("OUTPUT", OUTPUT_CHAIN)]
    );
}

#[test]
fn skip_ports_subnets_and_gid_are_planned_per_family() {
    let options = Options {
        proxy_gid: Some(2103),
        inbound_ports_to_ignore: (1..=20)
            .map(|p| PortRange {
                lo: 9000 + p,
                hi: 9000 + p,
            })
            .collect(),
        outbound_ports_to_ignore: vec!["443".parse().unwrap(), "6000-6010".parse().unwrap()],
        subnets_to_ignore: vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
        ..Options::default()
    };
    let v4 = plan(&options, Family::V4);
    let inbound = rules(&v4, REDIRECT_CHAIN);
    // 22 ignored inbound ports: two multiport rules of at most 15.
    assert_eq!(
        inbound.iter().filter(|r| r.contains("multiport")).count(),
        2
    );
    assert!(inbound[0].contains("--dports 4190,4191,9001,"));
    assert!(
        inbound
            .iter()
            .any(|r| r.contains("-s 10.0.0.0/8 -j RETURN"))
    );
    assert!(!inbound.iter().any(|r| r.contains("fd00::/8")));
    let outbound = rules(&v4, OUTPUT_CHAIN);
    assert!(outbound.iter().any(|r| r.contains("--gid-owner 2103")));
    assert!(
        outbound
            .iter()
            .any(|r| r.contains("--dports 443,6000:6010 -j RETURN"))
    );
    // Return rules come before the redirect.
    assert!(outbound.last().unwrap().contains("REDIRECT --to-port 4140"));
    assert!(inbound.last().unwrap().contains("REDIRECT --to-port 4143"));

    let v6 = rules(&plan(&options, Family::V6), REDIRECT_CHAIN);
    assert!(v6.iter().any(|r| r.contains("-s fd00::/8")));
    assert!(!v6.iter().any(|r| r.contains("10.0.0.0/8")));
}

#[test]
fn port_ranges_parse() {
    assert_eq!("80".parse::<PortRange>(), Ok(PortRange { lo: 80, hi: 80 }));
    assert_eq!(
        "80-90".parse::<PortRange>(),
        Ok(PortRange { lo: 80, hi: 90 })
    );
    assert!("90-80".parse::<PortRange>().is_err());
    assert!("0".parse::<PortRange>().is_err());
    assert!("x".parse::<PortRange>().is_err());
}

/// A fake iptables keeping nat chains in memory.
#[derive(Default)]
struct FakeIptables {
    chains: Mutex<BTreeMap<String, Vec<String>>>,
}

fn out(code: i32, stderr: &str) -> Output {
    Output {
        status: ExitStatus::from_raw(code << 8),
        stdout: Vec::new(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

impl Runner for FakeIptables {
    fn run(&self, _bin: &str, args: &[String]) -> io::Result<Output> {
        assert_eq!(&args[..3], &["-w", "-t", "nat"]);
        let mut chains = self.chains.lock();
        for builtin in ["PREROUTING", "OUTPUT"] {
            chains.entry(builtin.to_string()).or_default();
        }
        let (op, chain, rule) = (&args[3], args[4].clone(), args[5..].join(" "));
        Ok(match op.as_str() {
            "-N" if chains.contains_key(&chain) => out(1, "iptables: Chain already exists."),
            "-N" => {
                chains.insert(chain, Vec::new());
                out(0, "")
            }
            "-F" => {
                chains.get_mut(&chain).unwrap().clear();
                out(0, "")
            }
            "-A" => {
                chains.get_mut(&chain).unwrap().push(rule);
                out(0, "")
            }
            "-C" if chains[&chain].contains(&rule) => out(0, ""),
            "-C" => out(1, "Bad rule"),
            _ => out(2, "unknown"),
        })
    }
}

#[test]
fn applying_twice_is_idempotent() {
    let fake = FakeIptables::default();
    let steps = plan(&Options::default(), Family::V4);
    apply(&fake, "iptables-nft", &steps).unwrap();
    let first = fake.chains.lock().clone();
    assert_eq!(first["PREROUTING"].len(), 1);
    assert_eq!(first[REDIRECT_CHAIN].len(), 2);
    assert_eq!(first[OUTPUT_CHAIN].len(), 3);
    apply(&fake, "iptables-nft", &steps).unwrap();
    assert_eq!(*fake.chains.lock(), first);
}

struct Missing;

impl Runner for Missing {
    fn run(&self, _bin: &str, _args: &[String]) -> io::Result<Output> {
        Err(io::Error::from(io::ErrorKind::NotFound))
    }
}

struct Refusing;

impl Runner for Refusing {
    fn run(&self, _bin: &str, _args: &[String]) -> io::Result<Output> {
        Ok(out(4, "Permission denied (you must be root)"))
    }
}

#[test]
fn missing_or_refusing_iptables_is_reported_clearly() {
    let steps = plan(&Options::default(), Family::V4);
    let cases: [(&dyn Runner, [&str; 2]); 2] = [
        (&Missing, ["iptables-nft not found", "install"]),
        (&Refusing, ["Permission denied", "NET_ADMIN"]),
    ];
    for (runner, wants) in cases {
        let err = apply(runner, "iptables-nft", &steps)
            .unwrap_err()
            .to_string();
        assert!(wants.iter().all(|w| err.contains(w)), "{err}");
    }
}
