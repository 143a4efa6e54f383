//! Admin defaults: the admin listen address and the drain grace period.

use std::{net::SocketAddr, time::Duration};

use trellis_api::well_known;

use super::parse::loopback;

/// Default admin listen address (loopback, as in the contract).
pub const DEFAULT_ADMIN_LISTEN_ADDR: SocketAddr = loopback(well_known::PROXY_ADMIN_PORT);
/// Default shutdown grace period.
pub const DEFAULT_SHUTDOWN_GRACE_PERIOD: Duration = Duration::from_secs(120);
