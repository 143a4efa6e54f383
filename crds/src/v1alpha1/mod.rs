//! Version v1alpha1 of every Trellis kind, one module per kind.

pub mod authorization_policy;
pub mod mesh;
pub mod mesh_tls_authentication;
pub mod network_authentication;
pub mod server;
pub mod service_profile;
