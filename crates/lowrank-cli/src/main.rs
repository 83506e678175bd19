//! `lowrank`: low-rank matrix and tensor factorization from the command line.
//!
//! Each subcommand lives in `cmd/` and only parses arguments and calls the
//! library. Errors print as one line `error: ...` (plus a hint) on stderr;
//! the exit code is 2 for bad input or usage, 1 for a failed run.

mod cmd;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Low-rank matrix and tensor factorization and matrix completion.
#[derive(Parser)]
#[command(name = "lowrank", version, about, long_about = None, after_help = "Start with `lowrank demo`, then `lowrank fit --help`.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit a model to a ratings file, a dense matrix, a tensor or a synthetic problem.
    Fit(cmd::fit::FitArgs),
    /// Evaluate a saved model on a ratings file (RMSE, MAE).
    Eval(cmd::eval::EvalArgs),
    /// Top-N recommendations, similar items or fold-in with a saved model.
    Recommend(cmd::recommend::RecommendArgs),
    /// Generate the synthetic problems of the source material.
    #[command(subcommand)]
    Gen(cmd::generate::GenCommand),
    /// Tensor methods: `tensor cp` (CP decomposition, as `fit --algo cp-als`).
    #[command(subcommand)]
    Tensor(cmd::tensor::TensorCommand),
    /// Deterministic train/test splits (holdout, leave-k-out, k-fold).
    Split(cmd::split::SplitArgs),
    /// Read a data file fully and print counts, shape, density and histograms.
    Inspect(cmd::inspect::InspectArgs),
    /// Run the main job on an embedded synthetic problem (no files needed).
    Demo(cmd::demo::DemoArgs),
    /// Run one experiment from layered configs into a numbered run directory.
    Run(cmd::run::RunArgs),
    /// Run a grid of experiments, N at a time, with a results table.
    Sweep(cmd::sweep::SweepArgs),
    /// Plot convergence curves or singular-value dynamics of runs (SVG or PNG).
    Plot(cmd::plot::PlotArgs),
    /// One self-contained HTML page with the runs table, plots and configs.
    Report(cmd::report::ReportArgs),
    /// List the algorithms and their settings.
    Algos,
}

fn main() -> ExitCode {
    // A print to stdout after its reader left (`lowrank ... | head`) panics in
    // println: end quietly instead, as Unix tools do. (Not the default SIGPIPE
    // action: it would also kill a run whose stderr reader died, e.g. an
    // interrupted sweep, before the run saved its checkpoint.)
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") {
            std::process::exit(141);
        }
        default_hook(info)
    }));
    // the dense kernels' one-time cache probe, off the critical path: it
    // overlaps argument parsing and data loading instead of landing in the
    // first solver step (see `lowrank::warm_up`)
    std::thread::spawn(lowrank::warm_up);
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Fit(a) => cmd::fit::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Recommend(a) => cmd::recommend::run(a),
        Command::Gen(a) => cmd::generate::run(a),
        Command::Tensor(a) => cmd::tensor::run(a),
        Command::Split(a) => cmd::split::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Demo(a) => cmd::demo::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Sweep(a) => cmd::sweep::run(a),
        Command::Plot(a) => cmd::plot::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Algos => cmd::list_algos(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => cmd::report_error(&e),
    }
}
