//! Entry point of `trellis-operator`: parses the configuration and runs the chosen role.

use std::time::Duration;

use clap::Parser;
use trellis_operator::config::{Config, Role};

/// How long the runtime waits for blocking work once a role has returned.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(run());
    // Never wait forever on a blocking task (a stuck DNS lookup, a log writer): once the roles
    // have drained, the process ends.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    result
}

async fn run() -> anyhow::Result<()> {
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
