//! Tap defaults: the control listen address.

use std::net::SocketAddr;

use trellis_api::well_known;

use super::parse::unspecified;

/// Default control (tap) listen address.
pub const DEFAULT_CONTROL_LISTEN_ADDR: SocketAddr = unspecified(well_known::PROXY_CONTROL_PORT);
