//! Handing NET_ADMIN and NET_RAW to the iptables processes proxy-init runs.
//!
//! The injector runs proxy-init as root with only those two capabilities, which iptables
//! inherits. Run as another user (a runtime that grants it capabilities), the process would
//! lose them when it execs iptables, which has no file capabilities: raising them into the
//! inheritable and ambient sets keeps them across exec (and only them). Without them at all,
//! the error says how to fix the container rather than iptables' "you must be root".

use caps::{CapSet, Capability};

/// What iptables needs.
const NEEDED: [Capability; 2] = [Capability::CAP_NET_ADMIN, Capability::CAP_NET_RAW];

/// Capabilities that could not be handed on.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// The process does not have the capability at all.
    #[error(
        "proxy-init runs as uid {uid} without {cap}: container runtimes give a non-root user no capabilities, so run the init container as root (runAsUser: 0, runAsNonRoot: false) with NET_ADMIN and NET_RAW added, as the injector renders it"
    )]
    NotPermitted {
        /// The effective uid.
        uid: u32,
        /// The missing capability.
        cap: Capability,
    },
    /// The kernel refused to raise it.
    #[error("raising {cap} into the {set:?} set: {source}")]
    Raise {
        /// The capability.
        cap: Capability,
        /// The set.
        set: CapSet,
        /// The cause.
        #[source]
        source: caps::errors::CapsError,
    },
}

/// Makes NET_ADMIN and NET_RAW ambient, so the iptables processes started next have them.
pub fn pass_to_children() -> Result<(), CapabilityError> {
    let uid = nix::unistd::geteuid().as_raw();
    if uid == 0 {
        return Ok(());
    }
    for cap in NEEDED {
        if !caps::has_cap(None, CapSet::Permitted, cap).unwrap_or(false) {
            return Err(CapabilityError::NotPermitted { uid, cap });
        }
        for set in [CapSet::Inheritable, CapSet::Ambient] {
            caps::raise(None, set, cap).map_err(|source| CapabilityError::Raise {
                cap,
                set,
                source,
            })?;
        }
    }
    Ok(())
}
