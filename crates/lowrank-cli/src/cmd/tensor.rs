//! `lowrank tensor ...`: the tensor methods under their own name
//! (`tensor cp` is `fit --algo cp-als`, with every `fit` flag).

use clap::Subcommand;

use super::fit::FitArgs;

/// The tensor subcommands.
#[derive(Subcommand, Debug)]
pub enum TensorCommand {
    /// CP (PARAFAC) decomposition of a 3-way tensor by ALS: `fit --algo cp-als`
    /// (same flags; `--set compress=false`, `init=svd`, `line_search=true`, ...).
    Cp(FitArgs),
}

/// Run a tensor subcommand.
pub fn run(cmd: TensorCommand) -> anyhow::Result<()> {
    match cmd {
        TensorCommand::Cp(mut a) => {
            if let Some(other) = a.algo.as_deref().filter(|&x| x != "cp-als") {
                return Err(lowrank::Error::Config(format!(
                    "`lowrank tensor cp` runs cp-als; --algo {other} belongs to `lowrank fit --algo {other}`"
                ))
                .into());
            }
            a.algo = Some("cp-als".into());
            super::fit::run(a)
        }
    }
}
