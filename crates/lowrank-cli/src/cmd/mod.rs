//! Subcommands. Each parses its arguments and calls the library.

pub mod demo;
pub mod eval;
pub mod fit;
pub mod generate;
pub mod inspect;
pub mod plot;
pub mod recommend;
pub mod report;
pub mod run;
pub mod split;
pub mod sweep;
pub mod tensor;

use std::process::ExitCode;

use lowrank::io::{Format, IdMode, ReadOptions};

/// Print an error as one line (plus a hint) and choose the exit code:
/// 2 for bad input or usage, 1 for a failed run.
pub fn report_error(e: &anyhow::Error) -> ExitCode {
    let lib = e.chain().find_map(|c| c.downcast_ref::<lowrank::Error>());
    if e.chain()
        .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
    {
        return ExitCode::SUCCESS;
    }
    eprintln!("error: {}", one_line(&format!("{e}")));
    let ext = |p: &std::path::Path| p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let hint = match lib {
        Some(lowrank::Error::Parse { path, .. }) if ext(path) == "toml" => Some("fix the TOML at that line"),
        Some(lowrank::Error::Parse { path, .. }) if ext(path) == "safetensors" => {
            Some("the model file is damaged or not a lowrank model; save it again with --save-model")
        }
        Some(lowrank::Error::Parse { reason, .. }) if reason.contains("checkpoint") => {
            Some("resume with the checkpoint's data and settings, or delete the checkpoint to start over")
        }
        Some(lowrank::Error::Parse { .. }) => {
            Some("check the file, or force a format with --format (see `lowrank fit --help`)")
        }
        Some(lowrank::Error::Io { source, .. })
            if matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied) =>
        {
            Some("check the path and its permissions")
        }
        Some(lowrank::Error::Io { .. }) => Some("check the file, the disk space and the permissions"),
        Some(lowrank::Error::Config(_)) => Some("`lowrank algos` lists every algorithm and its settings"),
        _ => None,
    };
    if let Some(h) = hint {
        eprintln!("hint: {h}");
    }
    match lib {
        Some(l) if l.is_input_error() => ExitCode::from(2),
        Some(_) => ExitCode::from(1),
        None => ExitCode::from(2),
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// `lowrank algos`.
pub fn list_algos() -> anyhow::Result<()> {
    for a in lowrank::solve::registry::algos() {
        println!("{:<16} {}", a.name, a.about);
        if !a.keys.is_empty() {
            println!("{:<16} settings: {}", "", a.keys.join(", "));
        }
    }
    Ok(())
}

/// Options shared by commands that read data files.
#[derive(clap::Args, Clone, Debug)]
pub struct ReadArgs {
    /// File format: auto, movielens, movielens-dat, movielens-csv, triplets, matrix-market, dense, npy, tensor-text.
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// How ids become indices: map (any ids), zero-based or one-based (ids are indices).
    #[arg(long, default_value = "map")]
    pub ids: String,
}

impl ReadArgs {
    /// Library read options.
    pub fn options(&self) -> anyhow::Result<ReadOptions> {
        Ok(ReadOptions { format: Format::parse(&self.format)?, ids: parse_ids(&self.ids)?, ..Default::default() })
    }
}

/// Parse an `--ids` value.
pub fn parse_ids(s: &str) -> lowrank::Result<IdMode> {
    match s {
        "map" => Ok(IdMode::Map),
        "zero-based" | "0" => Ok(IdMode::ZeroBased),
        "one-based" | "1" => Ok(IdMode::OneBased),
        o => Err(lowrank::Error::invalid(format!("--ids must be map, zero-based or one-based, got '{o}'"))),
    }
}

/// Refuse an output path that is one of the input files (`--save-model
/// data.tsv` would replace the data with the model): `outputs` are
/// `(flag, path)` pairs.
pub fn refuse_overwriting_inputs(
    inputs: &[&std::path::Path],
    outputs: &[(&str, &std::path::Path)],
) -> anyhow::Result<()> {
    for (flag, out) in outputs {
        let Some(o) = file_identity(out) else { continue };
        if let Some(i) = inputs.iter().find(|i| file_identity(i).as_ref() == Some(&o)) {
            return Err(lowrank::Error::invalid(format!(
                "{flag} {} is an input file ({}): it would be overwritten; choose another path",
                out.display(),
                i.display()
            ))
            .into());
        }
    }
    Ok(())
}

/// The absolute path a file path names: the file itself (symlinks resolved)
/// when it exists, else its resolved directory joined with its name; `None`
/// when the directory does not exist either.
fn file_identity(p: &std::path::Path) -> Option<std::path::PathBuf> {
    std::fs::canonicalize(p).ok().or_else(|| {
        let dir = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        std::fs::canonicalize(dir).ok().map(|d| d.join(p.file_name().unwrap_or_default()))
    })
}

/// Output files of one command, `(flag, path)`: each must be a file path
/// (not a directory) whose directory can be created, and no two may be the
/// same file. Checked before any work, so that a bad path does not cost a fit.
pub fn check_outputs(outputs: &[(&str, &std::path::Path)]) -> anyhow::Result<()> {
    for (k, (flag, p)) in outputs.iter().enumerate() {
        if p.is_dir() {
            return Err(
                lowrank::Error::invalid(format!("{flag} {} is a directory; give a file path", p.display())).into()
            );
        }
        ensure_parent(p).map_err(|e| anyhow::anyhow!("{flag} {}: {e:#}", p.display()))?;
        let me = file_identity(p);
        if let Some((other, _)) = outputs[..k].iter().find(|(_, q)| me.is_some() && file_identity(q) == me) {
            return Err(lowrank::Error::invalid(format!(
                "{flag} and {other} are the same file ({}): give each output its own path",
                p.display()
            ))
            .into());
        }
    }
    Ok(())
}

/// Create the parent directory of an output file.
pub fn ensure_parent(p: &std::path::Path) -> anyhow::Result<()> {
    if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        ensure_dir(d)?;
    }
    Ok(())
}

/// Create an output directory (and its parents); a file in the way is an
/// error that says so, not the bare "File exists" of the OS.
pub fn ensure_dir(p: &std::path::Path) -> anyhow::Result<()> {
    if let Some(file) = p.ancestors().find(|a| !a.as_os_str().is_empty() && a.is_file()) {
        return Err(lowrank::Error::invalid(format!(
            "cannot create the directory {}: {} is a file, not a directory",
            p.display(),
            file.display()
        ))
        .into());
    }
    std::fs::create_dir_all(p).map_err(|e| lowrank::Error::io(p, e))?;
    Ok(())
}
