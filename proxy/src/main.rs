//! Entry point of `trellis-proxy`.

fn main() -> anyhow::Result<()> {
    anyhow::bail!(
        "trellis-proxy has no data path in this build yet; it listens on no port (outbound {}, inbound {} are planned)",
        trellis_proxy::well_known::PROXY_OUTBOUND_PORT,
        trellis_proxy::well_known::PROXY_INBOUND_PORT
    )
}
