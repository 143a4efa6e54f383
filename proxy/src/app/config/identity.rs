//! Identity settings: where the key and CSR live, the trust anchors, the token, the
//! identity controller, this proxy's name and when its certificate is refreshed.

use std::{path::PathBuf, time::Duration};

use crate::identity::config::IdentityConfig;

use super::{
    ENV_IDENTITY_DIR, ENV_IDENTITY_LOCAL_NAME, ENV_IDENTITY_MAX_REFRESH, ENV_IDENTITY_MIN_REFRESH,
    ENV_IDENTITY_SERVER_ID, ENV_IDENTITY_SERVER_NAME, ENV_IDENTITY_SVC_ADDR, ENV_IDENTITY_SVC_NAME,
    ENV_IDENTITY_TOKEN_FILE, ENV_IDENTITY_TRUST_ANCHORS, Error, Source,
    discovery::control_addr,
    parse::{check_dns_name, duration_or, get, invalid, required},
};

/// Default minimum certificate refresh interval.
pub const DEFAULT_IDENTITY_MIN_REFRESH: Duration = Duration::from_secs(10);
/// Default maximum certificate refresh interval.
pub const DEFAULT_IDENTITY_MAX_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);

impl IdentityConfig {
    /// Reads the identity settings from `env`.
    pub fn parse(env: &dyn Source) -> Result<Self, Error> {
        let svc = control_addr(env, ENV_IDENTITY_SVC_ADDR, ENV_IDENTITY_SVC_NAME)?;
        let local_name = local_name(env)?;
        let trust_anchors_pem = required(env, ENV_IDENTITY_TRUST_ANCHORS)?;
        if !trust_anchors_pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(invalid(
                ENV_IDENTITY_TRUST_ANCHORS,
                "<pem>",
                "must be a PEM bundle with at least one CERTIFICATE".to_string(),
            ));
        }
        let min_refresh = duration_or(env, ENV_IDENTITY_MIN_REFRESH, DEFAULT_IDENTITY_MIN_REFRESH)?;
        let max_refresh = duration_or(env, ENV_IDENTITY_MAX_REFRESH, DEFAULT_IDENTITY_MAX_REFRESH)?;
        if max_refresh < min_refresh {
            return Err(invalid(
                ENV_IDENTITY_MAX_REFRESH,
                &format!("{max_refresh:?}"),
                format!("must not be shorter than {ENV_IDENTITY_MIN_REFRESH}"),
            ));
        }
        Ok(Self {
            dir: PathBuf::from(required(env, ENV_IDENTITY_DIR)?),
            trust_anchors_pem,
            token_file: PathBuf::from(required(env, ENV_IDENTITY_TOKEN_FILE)?),
            svc,
            local_name,
            min_refresh,
            max_refresh,
        })
    }
}

/// This proxy's name: the local name, or a server id (with an equal server name, if any).
fn local_name(env: &dyn Source) -> Result<String, Error> {
    let local_name = match get(env, ENV_IDENTITY_LOCAL_NAME) {
        Some(name) => name,
        None => {
            let id = get(env, ENV_IDENTITY_SERVER_ID).ok_or(Error::Missing {
                name: ENV_IDENTITY_LOCAL_NAME,
            })?;
            if let Some(server_name) = get(env, ENV_IDENTITY_SERVER_NAME)
                && server_name != id
            {
                return Err(invalid(
                    ENV_IDENTITY_SERVER_NAME,
                    &server_name,
                    format!("must equal {ENV_IDENTITY_SERVER_ID} ({id:?})"),
                ));
            }
            id
        }
    };
    check_dns_name(ENV_IDENTITY_LOCAL_NAME, &local_name)?;
    Ok(local_name)
}
