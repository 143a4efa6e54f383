//! Certify request and response: the domain forms of the identity API's messages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use linkerd2_proxy_api::identity as proto;

use crate::error::InvalidMessage;

/// A validated `CertifyRequest`: every field present (their contents are checked by the server).
#[derive(Clone, PartialEq, Eq)]
pub struct CertifyRequest {
    /// The identity name the proxy asks for.
    pub identity: String,
    /// The ServiceAccount token proving who the proxy is (never logged).
    pub token: Vec<u8>,
    /// The certificate signing request, DER.
    pub csr_der: Vec<u8>,
}

impl std::fmt::Debug for CertifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifyRequest")
            .field("identity", &self.identity)
            .field("token", &"<redacted>")
            .field("csr_der_len", &self.csr_der.len())
            .finish()
    }
}

impl TryFrom<proto::CertifyRequest> for CertifyRequest {
    type Error = InvalidMessage;

    fn try_from(req: proto::CertifyRequest) -> Result<Self, Self::Error> {
        if req.identity.is_empty() {
            return Err(InvalidMessage::missing("identity"));
        }
        if req.token.is_empty() {
            return Err(InvalidMessage::missing("token"));
        }
        if req.certificate_signing_request.is_empty() {
            return Err(InvalidMessage::missing("certificate_signing_request"));
        }
        Ok(Self {
            identity: req.identity,
            token: req.token,
            csr_der: req.certificate_signing_request,
        })
    }
}

impl From<CertifyRequest> for proto::CertifyRequest {
    fn from(req: CertifyRequest) -> Self {
        Self {
            identity: req.identity,
            token: req.token,
            certificate_signing_request: req.csr_der,
        }
    }
}

/// An issued certificate: the leaf, its chain (issuer first) and its expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifyResponse {
    /// The leaf certificate, DER.
    pub leaf_der: Vec<u8>,
    /// Intermediate certificates, DER, leaf side first.
    pub intermediates_der: Vec<Vec<u8>>,
    /// The leaf's NotAfter.
    pub valid_until: SystemTime,
}

impl From<CertifyResponse> for proto::CertifyResponse {
    fn from(rsp: CertifyResponse) -> Self {
        Self {
            leaf_certificate: rsp.leaf_der,
            intermediate_certificates: rsp.intermediates_der,
            valid_until: Some(system_time_to_timestamp(rsp.valid_until)),
        }
    }
}

impl TryFrom<proto::CertifyResponse> for CertifyResponse {
    type Error = InvalidMessage;

    fn try_from(rsp: proto::CertifyResponse) -> Result<Self, Self::Error> {
        if rsp.leaf_certificate.is_empty() {
            return Err(InvalidMessage::missing("leaf_certificate"));
        }
        let valid_until = rsp
            .valid_until
            .ok_or_else(|| InvalidMessage::missing("valid_until"))?;
        let valid_until = timestamp_to_system_time(valid_until)
            .ok_or_else(|| InvalidMessage::new("valid_until", "before the Unix epoch"))?;
        Ok(Self {
            leaf_der: rsp.leaf_certificate,
            intermediates_der: rsp.intermediate_certificates,
            valid_until,
        })
    }
}

/// A protobuf timestamp for `time` (times before the epoch become the epoch).
pub fn system_time_to_timestamp(time: SystemTime) -> prost_types::Timestamp {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(since.subsec_nanos()).unwrap_or(0),
    }
}

/// The `SystemTime` of a protobuf timestamp, if it is not before the epoch.
pub fn timestamp_to_system_time(ts: prost_types::Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> proto::CertifyRequest {
        proto::CertifyRequest {
            identity: "web.shop.serviceaccount.identity.trellis.cluster.local".into(),
            token: b"token".to_vec(),
            certificate_signing_request: vec![0x30],
        }
    }

    #[test]
    fn empty_fields_are_named() {
        for (field, mut req) in [
            ("identity", request()),
            ("token", request()),
            ("certificate_signing_request", request()),
        ] {
            match field {
                "identity" => req.identity.clear(),
                "token" => req.token.clear(),
                _ => req.certificate_signing_request.clear(),
            }
            let err = CertifyRequest::try_from(req).unwrap_err();
            assert_eq!(err.field, field);
        }
        assert!(CertifyRequest::try_from(request()).is_ok());
    }

    #[test]
    fn debug_redacts_the_token() {
        let req = CertifyRequest::try_from(request()).unwrap();
        assert!(!format!("{req:?}").contains("token\\\""));
        assert!(format!("{req:?}").contains("<redacted>"));
    }

    #[test]
    fn response_round_trips_and_requires_valid_until() {
        let rsp = CertifyResponse {
            leaf_der: vec![1],
            intermediates_der: vec![vec![2]],
            valid_until: UNIX_EPOCH + Duration::from_secs(1_000),
        };
        let wire = proto::CertifyResponse::from(rsp.clone());
        assert_eq!(CertifyResponse::try_from(wire.clone()).unwrap(), rsp);
        let mut missing = wire;
        missing.valid_until = None;
        assert_eq!(
            CertifyResponse::try_from(missing).unwrap_err().field,
            "valid_until"
        );
    }
}
