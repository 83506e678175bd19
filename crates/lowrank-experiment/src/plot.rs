//! Plots of runs with plotters (SVG or PNG, with an embedded font, so no
//! system font is needed): convergence curves on a log scale (objective,
//! distance to the ground truth, train/test RMSE) for one or many runs, and
//! singular-value dynamics; heatmaps of matrices and animated GIFs of them
//! over iterations.

use std::path::Path;
use std::sync::Once;

use lowrank::observe::Record;
use lowrank::{Error, Result};
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Read a run's `trace.jsonl`.
pub fn read_trace(run_dir: &Path) -> Result<Vec<Record>> {
    let p = run_dir.join("trace.jsonl");
    if run_dir.is_dir() && !p.exists() {
        let runs = std::fs::read_dir(run_dir)
            .map(|rd| rd.flatten().filter(|e| e.path().join("trace.jsonl").exists()).count())
            .unwrap_or(0);
        let what = if runs > 0 {
            format!("it holds {runs} runs (a sweep?): plot them, e.g. {}/*", run_dir.display())
        } else {
            "no trace.jsonl: not a run directory".to_string()
        };
        return Err(Error::invalid(format!("{}: {what}", run_dir.display())));
    }
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(line).map_err(|e| Error::parse(&p, i as u64 + 1, format!("bad trace record: {e}")))?,
        );
    }
    if out.is_empty() {
        return Err(Error::parse(&p, 0, "the trace has no records (did the run start?)"));
    }
    Ok(out)
}

/// One curve: a label and (iteration, value) points.
pub type Series = (String, Vec<(f64, f64)>);

/// The values of `key` (or `objective`) along a trace, positive and finite only
/// (log scale).
pub fn series(records: &[Record], key: &str) -> Vec<(f64, f64)> {
    records
        .iter()
        .filter_map(|r| r.get(key).filter(|v| v.is_finite() && *v > 0.0).map(|v| (r.iteration as f64, v)))
        .collect()
}

/// Singular-value curves from the record vector `singular_values`.
pub fn singular_series(records: &[Record], top: usize) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for r in records {
        if let Some(s) = r.vectors.get("singular_values") {
            for (i, &v) in s.iter().take(top).enumerate() {
                if out.len() <= i {
                    out.push((format!("sigma_{}", i + 1), Vec::new()));
                }
                if v.is_finite() && v > 0.0 {
                    out[i].1.push((r.iteration as f64, v));
                }
            }
        }
    }
    out
}

/// Draw curves on a log-scale y axis into an SVG or PNG file (by extension).
pub fn line_chart(out: &Path, title: &str, y_label: &str, curves: &[Series]) -> Result<()> {
    let looked_for: Vec<&str> = curves.iter().map(|c| c.0.as_str()).collect();
    let curves: Vec<&Series> = curves.iter().filter(|c| !c.1.is_empty()).collect();
    if looked_for.is_empty() {
        return Err(Error::invalid(format!(
            "nothing to plot for '{title}': the traces record no such values (singular values are recorded by \
             deep and deep-svd, see n_singulars_save)"
        )));
    }
    if curves.is_empty() {
        return Err(Error::invalid(format!(
            "nothing to plot for '{title}': the traces have no positive finite value of {} (test values need a \
             test set or a ground truth)",
            looked_for.join(", ")
        )));
    }
    register_font();
    let xmax = curves.iter().flat_map(|c| c.1.iter().map(|p| p.0)).fold(1.0f64, f64::max);
    let (mut ymin, mut ymax) = curves
        .iter()
        .flat_map(|c| c.1.iter().map(|p| p.1))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if ymin >= ymax {
        ymin /= 2.0;
        ymax *= 2.0;
    }
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let frame = Frame { title, y_label, xmax, ymin, ymax, curves: &curves };
    let result = match ext.as_str() {
        "svg" => frame.draw(SVGBackend::new(out, (900, 560)).into_drawing_area()),
        "png" => frame.draw(BitMapBackend::new(out, (900, 560)).into_drawing_area()),
        other => return Err(Error::invalid(format!("unknown plot format '.{other}': use .svg or .png"))),
    };
    result.map_err(|e| Error::invalid(format!("cannot draw {}: {e}", out.display())))
}

struct Frame<'a> {
    title: &'a str,
    y_label: &'a str,
    xmax: f64,
    ymin: f64,
    ymax: f64,
    curves: &'a [&'a Series],
}

impl Frame<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, plotters::coord::Shift>) -> std::result::Result<(), String>
    where
        DB::ErrorType: 'static,
    {
        let e = |x: &dyn std::fmt::Display| x.to_string();
        root.fill(&WHITE).map_err(|x| e(&x))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..self.xmax, {
                let (lo, hi) = (self.ymin * 0.8, self.ymax * 1.25);
                (lo..hi).log_scale().with_key_points(log_ticks(lo, hi))
            })
            .map_err(|x| e(&x))?;
        chart
            .configure_mesh()
            .x_desc("iteration")
            .y_desc(self.y_label)
            .y_label_formatter(&|v| tick_label(*v))
            .draw()
            .map_err(|x| e(&x))?;
        for (i, c) in self.curves.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(c.1.iter().copied(), color.stroke_width(2)))
                .map_err(|x| e(&x))?
                .label(c.0.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(&x))?;
        root.present().map_err(|x| e(&x))?;
        Ok(())
    }
}

/// Ticks of a log axis over `[lo, hi]` (`0 < lo < hi`): the powers of ten
/// and their 2x and 5x when that gives at least three in the range, else
/// every integer multiple of the powers (a range within about a decade,
/// where plotters' own log ticks, the powers alone, left the axis bare),
/// else evenly spaced values.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return Vec::new();
    }
    let (d0, d1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let ladder = |mantissas: &[f64]| -> Vec<f64> {
        (d0..=d1)
            .flat_map(|d| mantissas.iter().map(move |m| m * 10f64.powi(d)))
            .filter(|v| (lo..=hi).contains(v))
            .collect()
    };
    for mantissas in [&[1.0, 2.0, 5.0][..], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0][..]] {
        let t = ladder(mantissas);
        if t.len() >= 3 {
            // at most a dozen labels: every k-th of a long ladder
            let k = t.len().div_ceil(12);
            return t.into_iter().step_by(k).collect();
        }
    }
    (1..=4).map(|i| lo + (hi - lo) * i as f64 / 5.0).collect()
}

/// A tick label: plain decimals from 1e-3 to 1e5 (`0.9`, `1.5`, `30000`),
/// scientific notation outside.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 || (1e-3..1e5).contains(&a) {
        let s = format!("{v:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{v:.1e}")
    }
}

/// A named matrix panel of a heatmap figure (NaN cells are drawn grey:
/// missing).
pub type Panel = (String, faer::Mat<f64>);

/// Diverging blue-white-red color of `v` in `[-scale, scale]`.
fn diverging(v: f64, scale: f64) -> RGBColor {
    if v.is_nan() {
        return RGBColor(200, 200, 200);
    }
    let t = (v / scale).clamp(-1.0, 1.0);
    let (r, g, b) = if t < 0.0 {
        let a = -t;
        (255.0 * (1.0 - a) + 33.0 * a, 255.0 * (1.0 - a) + 102.0 * a, 255.0 * (1.0 - a) + 172.0 * a)
    } else {
        (255.0 * (1.0 - t) + 178.0 * t, 255.0 * (1.0 - t) + 24.0 * t, 255.0 * (1.0 - t) + 43.0 * t)
    };
    RGBColor(r as u8, g as u8, b as u8)
}

/// Block-average a matrix down to at most `max` rows and columns (NaN-aware).
fn shrink(a: &faer::Mat<f64>, max: usize) -> faer::Mat<f64> {
    let (m, n) = (a.nrows(), a.ncols());
    let (bm, bn) = (m.div_ceil(max).max(1), n.div_ceil(max).max(1));
    if bm == 1 && bn == 1 {
        return a.clone();
    }
    faer::Mat::from_fn(m.div_ceil(bm), n.div_ceil(bn), |i, j| {
        let mut s = 0.0;
        let mut c = 0usize;
        for ii in i * bm..((i + 1) * bm).min(m) {
            for jj in j * bn..((j + 1) * bn).min(n) {
                let v = a[(ii, jj)];
                if !v.is_nan() {
                    s += v;
                    c += 1;
                }
            }
        }
        if c == 0 { f64::NAN } else { s / c as f64 }
    })
}

/// Heatmaps of matrices side by side with a shared diverging colormap (the
/// course notebook's `plot_decomposition`), as SVG or PNG.
pub fn heatmaps(out: &Path, title: &str, panels: &[Panel]) -> Result<()> {
    if panels.is_empty() {
        return Err(Error::invalid("nothing to draw"));
    }
    register_font();
    let panels: Vec<(String, faer::Mat<f64>)> = panels.iter().map(|(n, a)| (n.clone(), shrink(a, 120))).collect();
    let scale = panels
        .iter()
        .flat_map(|(_, a)| (0..a.nrows()).flat_map(move |i| (0..a.ncols()).map(move |j| a[(i, j)])))
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-300);
    let width = (320 * panels.len()).max(400) as u32;
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "svg" => draw_heatmaps(SVGBackend::new(out, (width, 380)).into_drawing_area(), title, &panels, scale),
        "png" => draw_heatmaps(BitMapBackend::new(out, (width, 380)).into_drawing_area(), title, &panels, scale),
        other => return Err(Error::invalid(format!("unknown plot format '.{other}': use .svg or .png"))),
    }
    .map_err(|e| Error::invalid(format!("cannot draw {}: {e}", out.display())))?;
    Ok(())
}

/// An animated GIF of heatmap figures, one frame per entry of `frames`
/// (`(frame title, panels)`), all drawn with one shared color scale so the
/// frames compare (the Adagrad blog's learning-rate animation). `delay_ms`
/// is the time each frame is shown.
pub fn heatmap_animation(out: &Path, title: &str, frames: &[(String, Vec<Panel>)], delay_ms: u32) -> Result<()> {
    let npanels = frames.first().map_or(0, |(_, p)| p.len());
    if npanels == 0 || frames.iter().any(|(_, p)| p.len() != npanels) {
        return Err(Error::invalid("an animation needs frames with the same, non-zero number of panels"));
    }
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if ext != "gif" {
        return Err(Error::invalid(format!("an animation is written as .gif, not '.{ext}'")));
    }
    register_font();
    let frames: Vec<(String, Vec<Panel>)> = frames
        .iter()
        .map(|(t, ps)| (t.clone(), ps.iter().map(|(n, a)| (n.clone(), shrink(a, 120))).collect()))
        .collect();
    let scale = frames
        .iter()
        .flat_map(|(_, ps)| ps.iter())
        .flat_map(|(_, a)| (0..a.nrows()).flat_map(move |i| (0..a.ncols()).map(move |j| a[(i, j)])))
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-300);
    let width = (320 * npanels).max(400) as u32;
    // written next to the target and renamed: never a half-written GIF
    let tmp = out.with_extension(format!("gif.tmp{}", std::process::id()));
    let drawn = (|| -> std::result::Result<(), String> {
        let root = BitMapBackend::gif(&tmp, (width, 380), delay_ms).map_err(|e| e.to_string())?.into_drawing_area();
        for (t, ps) in &frames {
            draw_heatmaps(root.clone(), &format!("{title} - {t}"), ps, scale)?;
        }
        Ok(())
    })();
    match drawn {
        Ok(()) => std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(Error::invalid(format!("cannot draw {}: {e}", out.display())))
        }
    }
}

fn draw_heatmaps<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    panels: &[Panel],
    scale: f64,
) -> std::result::Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: &dyn std::fmt::Display| x.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let root = root.titled(&format!("{title}  (color scale +/-{scale:.3})"), ("sans-serif", 18)).map_err(|x| e(&x))?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, (name, a)) in areas.iter().zip(panels) {
        let (m, n) = (a.nrows(), a.ncols());
        let mut chart = ChartBuilder::on(area)
            .caption(name, ("sans-serif", 15))
            .margin(8)
            .build_cartesian_2d(0..n, 0..m)
            .map_err(|x| e(&x))?;
        chart
            .draw_series((0..m).flat_map(|i| {
                (0..n).map(move |j| {
                    Rectangle::new([(j, m - 1 - i), (j + 1, m - i)], diverging(a[(i, j)], scale).filled())
                })
            }))
            .map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log-axis ticks: 1-2-5 over decades, every multiple within about a
    /// decade (objectives of 3e4-4.4e4, RMSEs of 0.93-1.1 used to get no
    /// label or one), and labels people read.
    #[test]
    fn log_ticks_label_a_narrow_range() {
        assert_eq!(
            log_ticks(0.5, 2000.0),
            vec![0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]
        );
        let t = log_ticks(3e4 * 0.8, 4.4e4 * 1.25);
        assert_eq!(t, vec![3e4, 4e4, 5e4]);
        let t = log_ticks(0.93 * 0.8, 1.1 * 1.25);
        assert_eq!(t, vec![0.8, 0.9, 1.0]);
        // within one multiple: evenly spaced, inside the range
        let t = log_ticks(1.01, 1.09);
        assert!(t.len() == 4 && t.iter().all(|v| (1.01..=1.09).contains(v)), "{t:?}");
        // a wide range keeps at most a dozen labels
        assert!(log_ticks(1e-12, 1e12).len() <= 12);
        assert_eq!(log_ticks(0.0, 1.0), Vec::<f64>::new());
        let labels: Vec<String> = [0.9, 1.5, 30000.0, 2e-7, 1e6].iter().map(|&v| tick_label(v)).collect();
        assert_eq!(labels, ["0.9", "1.5", "30000", "2.0e-7", "1.0e6"]);
    }

    #[test]
    fn svg_and_png_charts() {
        let dir = tempfile::tempdir().unwrap();
        let recs: Vec<Record> = (1..=20)
            .map(|i| {
                let mut r = Record { iteration: i, objective: Some(1.0 / i as f64), ..Default::default() };
                r.values.insert("rel_error".into(), 0.5f64.powi(i as i32));
                r.vectors.insert("singular_values".into(), vec![3.0, 1.0 / i as f64]);
                r
            })
            .collect();
        let svg = dir.path().join("c.svg");
        line_chart(
            &svg,
            "convergence",
            "value",
            &[("objective".into(), series(&recs, "objective")), ("rel_error".into(), series(&recs, "rel_error"))],
        )
        .unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.contains("<svg") && text.contains("polyline") && text.contains("rel_error"));
        let png = dir.path().join("s.png");
        line_chart(&png, "singular values", "sigma", &singular_series(&recs, 5)).unwrap();
        assert!(std::fs::metadata(&png).unwrap().len() > 1000);
        assert!(line_chart(&dir.path().join("x.svg"), "t", "y", &[("a".into(), vec![])]).is_err());
    }

    #[test]
    fn animated_gif_has_one_frame_per_entry() {
        let dir = tempfile::tempdir().unwrap();
        let frames: Vec<(String, Vec<Panel>)> = (0..3)
            .map(|f| {
                let a = faer::Mat::from_fn(4, 2, |i, j| (i + j + f) as f64);
                (format!("iteration {f}"), vec![("lr_u".to_string(), a.clone()), ("lr_v".to_string(), a)])
            })
            .collect();
        let gif = dir.path().join("a.gif");
        heatmap_animation(&gif, "lr", &frames, 200).unwrap();
        let bytes = std::fs::read(&gif).unwrap();
        assert!(bytes.starts_with(b"GIF89a"));
        // one graphic control extension (0x21 0xF9) per frame
        let gce = bytes.windows(2).filter(|w| w == &[0x21, 0xF9]).count();
        assert_eq!(gce, 3, "frames");
        // no temp file left behind; wrong extension and ragged frames are errors
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(heatmap_animation(&dir.path().join("a.png"), "lr", &frames, 200).is_err());
        let mut ragged = frames.clone();
        ragged[1].1.pop();
        assert!(heatmap_animation(&dir.path().join("b.gif"), "lr", &ragged, 200).is_err());
    }
}
