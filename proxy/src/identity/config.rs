//! The identity stage's settings, as `app::config` parses them from `TRELLIS_PROXY_IDENTITY_*`.

use std::{path::PathBuf, time::Duration};

use crate::transport::control_addr::ControlAddr;

/// Identity settings.
#[derive(Clone, Debug, PartialEq)]
pub struct IdentityConfig {
    /// Directory for `key.p8` and `csr.der`.
    pub dir: PathBuf,
    /// PEM bundle of trust anchors (non-empty).
    pub trust_anchors_pem: String,
    /// ServiceAccount token file.
    pub token_file: PathBuf,
    /// Identity controller.
    pub svc: ControlAddr,
    /// This proxy's identity name.
    pub local_name: String,
    /// Minimum refresh interval.
    pub min_refresh: Duration,
    /// Maximum refresh interval.
    pub max_refresh: Duration,
}
