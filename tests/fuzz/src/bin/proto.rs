//! Every conversion from the wire: the first byte picks the message, the rest is its protobuf.

use prost::Message;
use trellis_api::{
    destination, identity, inbound,
    linkerd2_proxy_api::{destination as dst, identity as id, inbound as inb, outbound as outb},
    outbound,
};

/// Decodes `bytes` as the wire message `W` and converts it to its domain type `D`.
fn convert<W: Message + Default, D: TryFrom<W>>(bytes: &[u8]) {
    if let Ok(message) = W::decode(bytes) {
        let _ = D::try_from(message);
    }
}

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&which, bytes)) = data.split_first() else {
            return;
        };
        match which % 8 {
            0 => convert::<dst::Update, destination::Update>(bytes),
            1 => convert::<dst::DestinationProfile, destination::Profile>(bytes),
            2 => convert::<inb::Server, inbound::ServerPolicy>(bytes),
            3 => convert::<inb::PortSpec, inbound::PortSpec>(bytes),
            4 => convert::<outb::OutboundPolicy, outbound::OutboundPolicy>(bytes),
            5 => convert::<outb::TrafficSpec, outbound::TrafficSpec>(bytes),
            6 => convert::<id::CertifyRequest, identity::CertifyRequest>(bytes),
            _ => convert::<id::CertifyResponse, identity::CertifyResponse>(bytes),
        }
    });
}
