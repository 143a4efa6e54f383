//! The opaque-transport header: decoding never panics, and what decodes re-encodes the same.

use trellis_proxy::transport::header::Header;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(header) = Header::decode_message(data) {
            let again = Header::decode_message(&header.encode_message())
                .expect("an encoded header decodes");
            assert_eq!(again, header);
        }
    });
}
