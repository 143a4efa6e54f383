//! Entry point of `trellis-operator`: parses the configuration and runs the chosen role.

use clap::Parser;
use trellis_operator::config::{Config, Role};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    match config.role {
        Some(Role::Version) => {
            #[expect(clippy::print_stdout, reason = "the version command writes to stdout")]
            {
                println!("trellis-operator {}", env!("CARGO_PKG_VERSION"));
            }
            Ok(())
        }
        None => anyhow::bail!(
            "no role given: run `trellis-operator --help` to list the roles this build provides"
        ),
        Some(_) => {
            trellis_operator::telemetry::init(&config.telemetry)?;
            trellis_operator::run(config).await?;
            Ok(())
        }
    }
}
