//! Errors of the webhook server and how each becomes an HTTP response.

use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

/// Why a webhook request could not be answered with an AdmissionReview.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request body is not an `admission.k8s.io/v1` AdmissionReview with a request.
    #[error(
        "malformed AdmissionReview: {reason}; send an admission.k8s.io/v1 AdmissionReview with a request"
    )]
    MalformedReview {
        /// What was wrong with the body.
        reason: String,
    },
    /// An object the webhook needs could not be read from the apiserver.
    #[error("could not read {what} from the apiserver")]
    Lookup {
        /// The object, like `namespace shop`.
        what: String,
        /// The underlying client error.
        #[source]
        source: LookupError,
    },
    /// A patch value could not be serialized.
    #[error("could not serialize a JSON patch value")]
    Serialize(#[source] serde_json::Error),
    /// The JSON patch could not be attached to the response.
    #[error("could not serialize the JSON patch")]
    Patch(#[source] kube::core::admission::SerializePatchError),
    /// The response could not be serialized.
    #[error("could not serialize the AdmissionReview response")]
    Response(#[source] serde_json::Error),
    /// A TLS certificate or key could not be loaded.
    #[error("invalid webhook TLS material: {reason}")]
    Tls {
        /// What was wrong, like `no certificate in the PEM`.
        reason: String,
    },
    /// The listener failed.
    #[error("webhook listener failed")]
    Io(#[source] std::io::Error),
}

/// A failure of a [`crate::lookup`] backend, boxed so that fakes and kube share one type.
pub type LookupError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    fn status(&self) -> StatusCode {
        match self {
            Self::MalformedReview { .. } => StatusCode::BAD_REQUEST,
            Self::Lookup { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Serialize(_)
            | Self::Patch(_)
            | Self::Response(_)
            | Self::Tls { .. }
            | Self::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut message = self.to_string();
        let mut source = std::error::Error::source(&self);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        if status.is_server_error() {
            tracing::warn!(error = %message, "Admission request failed");
        } else {
            tracing::debug!(error = %message, "Admission request rejected");
        }
        let body = serde_json::json!({ "error": message }).to_string();
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}
