//! `lowrank report`: one self-contained HTML page for a log directory.

use std::path::{Path, PathBuf};

use clap::Args;
use lowrank::io::atomic_write;
use lowrank_experiment::plot;

/// Arguments of `lowrank report`.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  lowrank report logs/mat-cmpl --out report.html\nThe page has no external resources: open it in any browser, offline."
)]
pub struct ReportArgs {
    /// A log directory (numbered runs, or sweeps of numbered runs).
    pub log_dir: PathBuf,
    /// Output HTML file.
    #[arg(long)]
    pub out: PathBuf,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Run directories under `dir` (depth 1 or 2), in numeric order.
fn find_runs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn children(d: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .map(|r| r.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default();
        v.sort_by_key(|p| {
            (p.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u64>().ok()).unwrap_or(u64::MAX), p.clone())
        });
        v
    }
    fn rec(d: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        for c in children(d) {
            if c.join("summary.json").exists() {
                out.push(c);
            } else if depth < 2 {
                rec(&c, depth + 1, out);
            }
        }
    }
    if dir.join("summary.json").exists() {
        out.push(dir.to_path_buf());
    } else {
        rec(dir, 0, &mut out);
    }
    out
}

/// `lowrank report`.
pub fn run(a: ReportArgs) -> anyhow::Result<()> {
    if !a.log_dir.is_dir() {
        return Err(lowrank::Error::invalid(format!("{} is not a directory", a.log_dir.display())).into());
    }
    // an HTML page, never one of the files it reads (a run's summary.json or trace)
    if !a.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm")) {
        return Err(lowrank::Error::invalid(format!("--out {} must end in .html", a.out.display())).into());
    }
    super::check_outputs(&[("--out", &a.out)])?;
    let runs = find_runs(&a.log_dir);
    if runs.is_empty() {
        return Err(
            lowrank::Error::invalid(format!("no finished runs (summary.json) under {}", a.log_dir.display())).into()
        );
    }
    let cols = [
        "algo",
        "rank",
        "iterations",
        "train_rmse",
        "test_rmse",
        "rel_error",
        "effective_rank",
        "fit_seconds",
        "termination",
    ];
    let mut rows = String::new();
    let mut details = String::new();
    let tmp = tempfile_dir()?;
    for (i, r) in runs.iter().enumerate() {
        let name = r.strip_prefix(&a.log_dir).unwrap_or(r).display().to_string();
        let summary: serde_json::Value = std::fs::read_to_string(r.join("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        rows.push_str(&format!("<tr><td><a href=\"#run{i}\">{}</a></td>", escape(&name)));
        for c in cols {
            let v = &summary[c];
            let (text, sort) = match v {
                serde_json::Value::Number(n) => {
                    let f = n.as_f64().unwrap_or(f64::NAN);
                    (if n.is_f64() { format!("{f:.4e}") } else { n.to_string() }, f.to_string())
                }
                serde_json::Value::String(s) => (escape(s), escape(s)),
                _ => (String::new(), String::new()),
            };
            rows.push_str(&format!("<td data-sort=\"{sort}\">{text}</td>"));
        }
        rows.push_str("</tr>\n");
        let config = std::fs::read_to_string(r.join("config.toml")).unwrap_or_default();
        let mut svg = String::new();
        if let Ok(trace) = plot::read_trace(r) {
            let curves: Vec<plot::Series> = ["objective", "rel_error", "test_rmse", "train_loss"]
                .iter()
                .map(|k| (k.to_string(), plot::series(&trace, k)))
                .collect();
            let f = tmp.join(format!("{i}.svg"));
            if plot::line_chart(&f, &format!("run {name}"), "value", &curves).is_ok() {
                svg = std::fs::read_to_string(&f).unwrap_or_default();
            }
            let sv = plot::singular_series(&trace, 10);
            let f2 = tmp.join(format!("{i}-sv.svg"));
            if !sv.is_empty() && plot::line_chart(&f2, "singular values", "sigma", &sv).is_ok() {
                svg.push_str(&std::fs::read_to_string(&f2).unwrap_or_default());
            }
        }
        details.push_str(&format!(
            "<section id=\"run{i}\"><h2>run {}</h2><div class=\"plots\">{svg}</div><pre>{}</pre></section>\n",
            escape(&name),
            escape(&config)
        ));
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let head: String = std::iter::once("run")
        .chain(cols)
        .enumerate()
        .map(|(k, c)| format!("<th onclick=\"sortBy({k})\">{c}</th>"))
        .collect();
    let html = format!(
        r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>lowrank report: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th {{ cursor: pointer; background: #eee; }}
pre {{ background: #f6f6f6; padding: 8px; }}
.plots svg {{ max-width: 100%; height: auto; }}
</style></head>
<body><h1>lowrank report: {title}</h1>
<p>{n} runs. Click a column header to sort.</p>
<table id="runs"><thead><tr>{head}</tr></thead><tbody>
{rows}</tbody></table>
{details}
<script>
let asc = true;
function sortBy(k) {{
  const tb = document.querySelector('#runs tbody');
  const rows = Array.from(tb.rows);
  const key = r => {{ const c = r.cells[k]; const s = c.dataset.sort ?? c.textContent; const f = parseFloat(s); return isNaN(f) ? s : f; }};
  rows.sort((a, b) => {{ const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1); }});
  asc = !asc;
  rows.forEach(r => tb.appendChild(r));
}}
</script></body></html>
"#,
        title = escape(&a.log_dir.display().to_string()),
        n = runs.len(),
    );
    super::ensure_parent(&a.out)?;
    atomic_write(&a.out, |w| w.write_all(html.as_bytes()))?;
    eprintln!("wrote {} ({} runs)", a.out.display(), runs.len());
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("lowrank-report-{}", std::process::id()));
    super::ensure_dir(&d)?;
    Ok(d)
}
