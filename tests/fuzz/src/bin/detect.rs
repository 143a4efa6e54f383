//! Protocol detection (HTTP/1, HTTP/2 preface, TLS ClientHello, opaque) on arbitrary bytes.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use trellis_proxy::transport::detect::detect;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        trellis_fuzz::runtime().block_on(async {
            let (_, mut replayed) = detect(data, Duration::from_secs(1))
                .await
                .expect("reading from a slice does not fail");
            // Whatever was decided, every byte is replayed, in order.
            let mut all = Vec::new();
            replayed.read_to_end(&mut all).await.expect("replay");
            assert_eq!(all, data, "detection lost or reordered bytes");
        });
    });
}
