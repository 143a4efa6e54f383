//! PKI shared by both roles: certificate parsing and generation ([`cert`]), the issuer that
//! signs workload leaves ([`issuer`]) and the CSR checks Certify applies ([`csr`]).
//!
//! It imports neither the reconciler nor the control plane; both import it.

pub mod cert;
pub mod csr;
pub mod issuer;
