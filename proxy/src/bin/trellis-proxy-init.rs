//! Entry point of `trellis-proxy-init`: installs the pod's iptables redirection.

use anyhow::Context as _;
use clap::Parser;
use trellis_api::ports::PortRange;
use trellis_proxy::{
    init::{self, Family, Options},
    well_known,
};

/// Redirects the pod's TCP traffic through the Trellis proxy.
#[derive(Debug, Parser)]
#[command(name = "trellis-proxy-init")]
struct Args {
    /// Port of the proxy's inbound listener.
    #[arg(long, default_value_t = well_known::PROXY_INBOUND_PORT)]
    incoming_proxy_port: u16,
    /// Port of the proxy's outbound listener.
    #[arg(long, default_value_t = well_known::PROXY_OUTBOUND_PORT)]
    outgoing_proxy_port: u16,
    /// Uid the proxy runs as; its traffic is never redirected.
    #[arg(long, default_value_t = well_known::PROXY_UID)]
    proxy_uid: u32,
    /// Gid the proxy runs as, if its traffic is also matched by group.
    #[arg(long)]
    proxy_gid: Option<u32>,
    /// Inbound ports (or ranges `a-b`) not redirected, comma-separated.
    #[arg(long, value_delimiter = ',')]
    inbound_ports_to_ignore: Vec<PortRange>,
    /// Outbound ports (or ranges) not redirected, comma-separated.
    #[arg(long, value_delimiter = ',')]
    outbound_ports_to_ignore: Vec<PortRange>,
    /// Inbound source networks not redirected, comma-separated.
    #[arg(long, value_delimiter = ',')]
    subnets_to_ignore: Vec<ipnet::IpNet>,
    /// Also install the rules with ip6tables.
    #[arg(long)]
    ipv6: bool,
    /// iptables backend: `nft` or `legacy`.
    #[arg(long, default_value = "nft")]
    iptables_mode: String,
    /// Print the plan instead of applying it.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let options = Options {
        inbound_port: args.incoming_proxy_port,
        outbound_port: args.outgoing_proxy_port,
        proxy_uid: args.proxy_uid,
        proxy_gid: args.proxy_gid,
        inbound_ports_to_ignore: args.inbound_ports_to_ignore,
        outbound_ports_to_ignore: args.outbound_ports_to_ignore,
        subnets_to_ignore: args.subnets_to_ignore,
    };
    if !args.dry_run {
        init::capabilities::pass_to_children()?;
    }
    let mut families = vec![Family::V4];
    if args.ipv6 {
        families.push(Family::V6);
    }
    for family in families {
        let bin = init::binary(&args.iptables_mode, family).with_context(|| {
            format!(
                "--iptables-mode {:?} must be nft or legacy",
                args.iptables_mode
            )
        })?;
        let steps = init::plan(&options, family);
        if args.dry_run {
            for step in &steps {
                tracing::info!(%bin, ?step, "Planned");
            }
            continue;
        }
        init::apply(&init::Command, bin, &steps)
            .with_context(|| format!("installing the {family:?} redirection with {bin}"))?;
        tracing::info!(%bin, rules = steps.len(), "Installed the proxy redirection");
    }
    Ok(())
}
