//! AdmissionReview decoding and responses.

use bytes::Bytes;
use kube::{
    Resource,
    core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview},
};
use serde::de::DeserializeOwned;

use crate::error::Error;

/// `apiVersion` of the only AdmissionReview version the webhooks speak.
pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";
/// `kind` of an AdmissionReview.
pub const ADMISSION_KIND: &str = "AdmissionReview";

/// Decodes an HTTP body into the AdmissionRequest it carries.
///
/// Fails with [`Error::MalformedReview`] when the body is not JSON, is not an
/// `admission.k8s.io/v1` AdmissionReview, has no `request`, or its object is not a `T`.
pub fn decode<T>(body: &Bytes) -> Result<AdmissionRequest<T>, Error>
where
    T: Resource + DeserializeOwned,
{
    if body.is_empty() {
        return Err(malformed("the body is empty"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("not JSON ({e})")))?;
    let api_version = value.get("apiVersion").and_then(|v| v.as_str());
    let kind = value.get("kind").and_then(|v| v.as_str());
    if api_version != Some(ADMISSION_API_VERSION) || kind != Some(ADMISSION_KIND) {
        return Err(malformed(format!(
            "apiVersion/kind is {}/{}, expected {ADMISSION_API_VERSION}/{ADMISSION_KIND}",
            api_version.unwrap_or("<none>"),
            kind.unwrap_or("<none>")
        )));
    }
    if value.get("request").is_none_or(serde_json::Value::is_null) {
        return Err(malformed("it has no request"));
    }
    let review: AdmissionReview<T> = serde_json::from_value(value)
        .map_err(|e| malformed(format!("the request does not decode ({e})")))?;
    review
        .try_into()
        .map_err(|_| malformed("it has no request"))
}

/// Encodes `response` as the AdmissionReview body the apiserver expects.
pub fn encode(response: AdmissionResponse) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(&response.into_review()).map_err(Error::Response)
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::MalformedReview {
        reason: reason.into(),
    }
}
