//! Types and schema helpers shared by several kinds.

pub mod access_policy;
pub mod cidr;
pub mod condition;
pub mod duration;
pub mod log_level;
pub mod names;
pub mod port;
pub mod resources;
pub mod status;
pub mod target_ref;
