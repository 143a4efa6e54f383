//! AdmissionReview decoding, as both webhooks receive it.

use k8s_openapi::api::core::v1::Pod;
use kube::api::DynamicObject;
use trellis_webhooks::review;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let body = bytes::Bytes::copy_from_slice(data);
        let _ = review::decode::<Pod>(&body);
        let _ = review::decode::<DynamicObject>(&body);
    });
}
