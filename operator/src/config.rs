//! Command-line and environment configuration of `trellis-operator`.

use clap::Parser;

/// Settings of `trellis-operator`, from flags or `TRELLIS_OPERATOR_*` variables.
#[derive(Debug, Parser)]
#[command(name = "trellis-operator", version, about)]
pub struct Config {
    /// The role to run.
    #[command(subcommand)]
    pub role: Option<Role>,
}

/// What a `trellis-operator` process does.
#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum Role {
    /// Print the version and the crates this binary was built from.
    Version,
}
