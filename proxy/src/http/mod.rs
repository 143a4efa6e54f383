//! HTTP shared by the inbound and outbound stacks: the body type, `l5d-*` header names,
//! responses the proxy makes, the `l5d-orig-proto` upgrade and downgrade, and upgrade splices.

pub mod orig_proto;
pub mod replay;
pub mod response;
pub mod server;
pub mod upgrade;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;

pub use self::{
    replay::ReqBody,
    response::{forbidden, grpc_status, is_grpc, proxy_error},
    server::serve,
};

/// The body of a forwarded response: the peer's, or one the proxy made.
pub type Body = Either<Incoming, Full<Bytes>>;

/// Header naming an error the proxy made.
pub const L5D_PROXY_ERROR: &str = "l5d-proxy-error";
/// Header carrying the client app's HTTP version across an HTTP/2 hop.
pub const L5D_ORIG_PROTO: &str = "l5d-orig-proto";
/// Header naming a meshed caller's identity to the application.
pub const L5D_CLIENT_ID: &str = "l5d-client-id";
/// Header the peer uses for its own profile lookup.
pub const L5D_DST_CANONICAL: &str = "l5d-dst-canonical";
/// gRPC status code `PERMISSION_DENIED`.
pub const GRPC_PERMISSION_DENIED: u32 = 7;
