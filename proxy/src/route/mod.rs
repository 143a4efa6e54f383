//! Route conditions and filters shared by both directions: compiled request matches and
//! hosts, header edits and redirects.

pub mod filter;
pub mod matcher;
