//! `trellis-proxy-init`: the pod's iptables redirection, as a pure rule plan and its execution.
//!
//! [`plan`] turns the options into `iptables` invocations (nat table, chains
//! `PROXY_INIT_REDIRECT` from `PREROUTING` and `PROXY_INIT_OUTPUT` from `OUTPUT`, comments
//! prefixed `proxy-init/`). [`apply`] runs them: existing chains are flushed and rebuilt and
//! jumps are added only once, so a rerun is idempotent.

pub mod capabilities;

use std::{io, net::IpAddr, process::Output};

use trellis_api::{ports::PortRange, well_known};

/// Chain that redirects inbound traffic.
pub const REDIRECT_CHAIN: &str = "PROXY_INIT_REDIRECT";
/// Chain that redirects outbound traffic.
pub const OUTPUT_CHAIN: &str = "PROXY_INIT_OUTPUT";
/// Prefix of every rule comment.
pub const COMMENT_PREFIX: &str = "proxy-init/";
/// Most ports one `multiport` match may hold.
pub const MULTIPORT_MAX: usize = 15;
/// Inbound ports never redirected: the proxy's control (tap) and admin ports.
pub const ALWAYS_IGNORED_INBOUND: [u16; 2] =
    [well_known::PROXY_CONTROL_PORT, well_known::PROXY_ADMIN_PORT];

/// A range as a `multiport` match writes it: `80` or `80:90`.
fn multiport(range: PortRange) -> String {
    if range.lo == range.hi {
        range.lo.to_string()
    } else {
        format!("{}:{}", range.lo, range.hi)
    }
}

/// Which IP family a rule set is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `iptables`.
    V4,
    /// `ip6tables`.
    V6,
}

/// What to redirect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Inbound proxy port (4143).
    pub inbound_port: u16,
    /// Outbound proxy port (4140).
    pub outbound_port: u16,
    /// The proxy's uid, whose traffic is never redirected.
    pub proxy_uid: u32,
    /// The proxy's gid, if its traffic is also to be matched by group.
    pub proxy_gid: Option<u32>,
    /// Inbound ports not redirected (the control and admin ports are always added).
    pub inbound_ports_to_ignore: Vec<PortRange>,
    /// Outbound ports not redirected.
    pub outbound_ports_to_ignore: Vec<PortRange>,
    /// Inbound source networks not redirected.
    pub subnets_to_ignore: Vec<ipnet::IpNet>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            inbound_port: well_known::PROXY_INBOUND_PORT,
            outbound_port: well_known::PROXY_OUTBOUND_PORT,
            proxy_uid: well_known::PROXY_UID,
            proxy_gid: None,
            inbound_ports_to_ignore: Vec::new(),
            outbound_ports_to_ignore: Vec::new(),
            subnets_to_ignore: Vec::new(),
        }
    }
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Create `chain` in the nat table, or flush it when it exists.
    Chain(&'static str),
    /// Append a rule to a chain (arguments after `-t nat -A <chain>`).
    Append(&'static str, Vec<String>),
    /// Append a jump from a built-in chain unless the same rule exists.
    Jump {
        /// The built-in chain.
        from: &'static str,
        /// The target chain.
        to: &'static str,
        /// Rule comment.
        comment: String,
    },
}

/// A rule appended to `chain`: `rule`, then a comment `proxy-init/<comment>`.
fn append(chain: &'static str, rule: &[&str], comment: &str) -> Step {
    let mut rule: Vec<String> = rule.iter().map(|s| (*s).to_string()).collect();
    rule.extend([
        "-m".into(),
        "comment".into(),
        "--comment".into(),
        format!("{COMMENT_PREFIX}{comment}"),
    ]);
    Step::Append(chain, rule)
}

/// The closing rule of `chain`, redirecting all TCP to `port`, and the jump to `chain`
/// from the built-in chain `from`; `direction` is `incoming` or `outgoing`.
fn redirect_all(chain: &'static str, from: &'static str, port: u16, direction: &str) -> [Step; 2] {
    let port = port.to_string();
    [
        append(
            chain,
            &["-p", "tcp", "-j", "REDIRECT", "--to-port", &port],
            &format!("redirect-all-{direction}-to-proxy-port-{port}"),
        ),
        Step::Jump {
            from,
            to: chain,
            comment: format!("{COMMENT_PREFIX}install-proxy-init-{}", from.to_lowercase()),
        },
    ]
}

fn ignore_ports(chain: &'static str, ports: &[PortRange], what: &str) -> Vec<Step> {
    let mut ports = ports.to_vec();
    ports.sort();
    ports.dedup();
    ports
        .chunks(MULTIPORT_MAX)
        .map(|chunk| {
            let list = chunk
                .iter()
                .map(|p| multiport(*p))
                .collect::<Vec<_>>()
                .join(",");
            append(
                chain,
                &[
                    "-p",
                    "tcp",
                    "-m",
                    "multiport",
                    "--dports",
                    &list,
                    "-j",
                    "RETURN",
                ],
                &format!("ignore-{what}-ports-{list}"),
            )
        })
        .collect()
}

/// The steps that install the redirection for `family`.
pub fn plan(options: &Options, family: Family) -> Vec<Step> {
    let mut steps = vec![Step::Chain(REDIRECT_CHAIN)];
    let mut inbound_ignored: Vec<PortRange> = ALWAYS_IGNORED_INBOUND
        .iter()
        .map(|p| PortRange { lo: *p, hi: *p })
        .collect();
    inbound_ignored.extend(options.inbound_ports_to_ignore.iter().copied());
    steps.extend(ignore_ports(REDIRECT_CHAIN, &inbound_ignored, "inbound"));
    for net in &options.subnets_to_ignore {
        let matches_family = matches!(
            (net.addr(), family),
            (IpAddr::V4(_), Family::V4) | (IpAddr::V6(_), Family::V6)
        );
        if matches_family {
            steps.push(append(
                REDIRECT_CHAIN,
                &["-p", "tcp", "-s", &net.to_string(), "-j", "RETURN"],
                &format!("ignore-subnet-{net}"),
            ));
        }
    }
    steps.extend(redirect_all(
        REDIRECT_CHAIN,
        "PREROUTING",
        options.inbound_port,
        "incoming",
    ));

    steps.push(Step::Chain(OUTPUT_CHAIN));
    let uid = options.proxy_uid.to_string();
    steps.push(append(
        OUTPUT_CHAIN,
        &["-m", "owner", "--uid-owner", &uid, "-j", "RETURN"],
        &format!("ignore-proxy-user-id-{uid}"),
    ));
    if let Some(gid) = options.proxy_gid {
        let gid = gid.to_string();
        steps.push(append(
            OUTPUT_CHAIN,
            &["-m", "owner", "--gid-owner", &gid, "-j", "RETURN"],
            &format!("ignore-proxy-group-id-{gid}"),
        ));
    }
    steps.push(append(
        OUTPUT_CHAIN,
        &["-o", "lo", "-j", "RETURN"],
        "ignore-loopback",
    ));
    steps.extend(ignore_ports(
        OUTPUT_CHAIN,
        &options.outbound_ports_to_ignore,
        "outbound",
    ));
    steps.extend(redirect_all(
        OUTPUT_CHAIN,
        "OUTPUT",
        options.outbound_port,
        "outgoing",
    ));
    steps
}

/// Failure to install the rules.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The iptables binary is not installed.
    #[error(
        "{bin} not found: install iptables ({bin}) in the proxy-init image, or choose another --iptables-mode"
    )]
    Missing {
        /// The binary.
        bin: String,
    },
    /// The binary could not be run.
    #[error("running {bin}")]
    Spawn {
        /// The binary.
        bin: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A rule was refused.
    #[error("{bin} {args} failed: {stderr} (does the container have NET_ADMIN and NET_RAW?)")]
    Failed {
        /// The binary.
        bin: String,
        /// The arguments.
        args: String,
        /// What iptables said.
        stderr: String,
    },
}

/// Runs a binary; tests substitute a fake.
pub trait Runner {
    /// Runs `bin` with `args`.
    fn run(&self, bin: &str, args: &[String]) -> io::Result<Output>;
}

/// Runs real processes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Command;

impl Runner for Command {
    fn run(&self, bin: &str, args: &[String]) -> io::Result<Output> {
        std::process::Command::new(bin).args(args).output()
    }
}

fn run(runner: &dyn Runner, bin: &str, args: Vec<String>) -> Result<Output, Error> {
    runner.run(bin, &args).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            Error::Missing {
                bin: bin.to_string(),
            }
        } else {
            Error::Spawn {
                bin: bin.to_string(),
                source,
            }
        }
    })
}

fn check(bin: &str, args: &[String], out: Output) -> Result<(), Error> {
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Failed {
            bin: bin.to_string(),
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Applies `steps` with `bin` (e.g. `iptables-nft`). Existing chains are flushed first and
/// jumps are not duplicated, so applying twice leaves the same rules.
pub fn apply(runner: &dyn Runner, bin: &str, steps: &[Step]) -> Result<(), Error> {
    let nat = |rest: &[&str]| -> Vec<String> {
        ["-w", "-t", "nat"]
            .iter()
            .chain(rest)
            .map(|s| (*s).to_string())
            .collect()
    };
    for step in steps {
        match step {
            Step::Chain(chain) => {
                let a = nat(&["-N", chain]);
                let out = run(runner, bin, a.clone())?;
                if !out.status.success() {
                    // The chain exists from an earlier run: flush and rebuild it.
                    let a = nat(&["-F", chain]);
                    let out = run(runner, bin, a.clone())?;
                    check(bin, &a, out)?;
                }
            }
            Step::Append(chain, rule) => {
                let mut a = nat(&["-A", chain]);
                a.extend(rule.iter().cloned());
                let out = run(runner, bin, a.clone())?;
                check(bin, &a, out)?;
            }
            Step::Jump { from, to, comment } => {
                let rule =
                    |op: &str| nat(&[op, from, "-j", to, "-m", "comment", "--comment", comment]);
                let exists = run(runner, bin, rule("-C"))?.status.success();
                if !exists {
                    let a = rule("-A");
                    let out = run(runner, bin, a.clone())?;
                    check(bin, &a, out)?;
                }
            }
        }
    }
    Ok(())
}

/// The iptables binaries of a backend (`nft` or `legacy`) for a family.
pub fn binary(mode: &str, family: Family) -> Option<&'static str> {
    match (mode, family) {
        ("nft", Family::V4) => Some("iptables-nft"),
        ("nft", Family::V6) => Some("ip6tables-nft"),
        ("legacy", Family::V4) => Some("iptables-legacy"),
        ("legacy", Family::V6) => Some("ip6tables-legacy"),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
