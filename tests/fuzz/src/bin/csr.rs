//! CSR parsing and the shape checks Certify applies before signing.

use trellis_operator::pki::csr;

const IDENTITY: &str = "web.shop.serviceaccount.identity.trellis.cluster.local";

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(parsed) = csr::parse(data) {
            let _ = csr::check(&parsed, IDENTITY);
        }
    });
}
