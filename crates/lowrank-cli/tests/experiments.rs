//! End-to-end tests of the experiment commands: `run`, `sweep`, `plot`,
//! `report` (rendered in headless Chromium when it is installed).

use std::path::Path;

use assert_cmd::Command;

fn lowrank() -> Command {
    Command::cargo_bin("lowrank").unwrap()
}

fn config(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("base.toml");
    std::fs::write(&p, "algo = \"baseline\"\nproblem = \"planted\"\nproblem_n = 20\nproblem_rank = 2\nproblem_observed = 150\nepochs = 4\n")
        .unwrap();
    p
}

fn ok(out: &std::process::Output) {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn usage_error(out: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
}

#[test]
fn runs_get_numbered_directories_with_all_outputs() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path());
    let logs = d.path().join("logs");
    for expect in ["0", "1"] {
        let out = lowrank()
            .args(["run", "--json", "--config"])
            .arg(&cfg)
            .args(["--set", "reg_user=5", "--log-dir"])
            .arg(&logs)
            .output()
            .unwrap();
        ok(&out);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v["run_dir"].as_str().unwrap().ends_with(expect), "{v}");
        let run = logs.join(expect);
        for f in ["config.toml", "trace.jsonl", "summary.json", "model.safetensors", "log.txt"] {
            assert!(run.join(f).exists(), "{f} missing in {}", run.display());
        }
        let cfg_text = std::fs::read_to_string(run.join("config.toml")).unwrap();
        assert!(cfg_text.contains("reg_user = 5"), "{cfg_text}");
        assert_eq!(std::fs::read_to_string(run.join("trace.jsonl")).unwrap().lines().count(), 4);
    }
    // bad configs: one clear line, exit 2, no directory created
    let out = lowrank()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--set", "reg_usr=1", "--log-dir"])
        .arg(d.path().join("new"))
        .output()
        .unwrap();
    usage_error(&out, "did you mean 'reg_user'");
    assert!(!d.path().join("new").exists());
    let bad = d.path().join("bad.toml");
    std::fs::write(&bad, "algo = \"baseline\"\nproblem = \"planted\"\nepochs = \"many\"\n").unwrap();
    let out =
        lowrank().args(["run", "--config"]).arg(&bad).arg("--log-dir").arg(d.path().join("new")).output().unwrap();
    usage_error(&out, "epochs");
    let out = lowrank().args(["run", "--config"]).arg(&cfg).args(["--set", "=3"]).output().unwrap();
    usage_error(&out, "key=value");
    // a model path the run would ignore (it writes RUN_DIR/model.safetensors)
    let out = lowrank()
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--set", "save_model=m.safetensors", "--log-dir"])
        .arg(d.path().join("new"))
        .output()
        .unwrap();
    usage_error(&out, "save_model (from --set) applies to `lowrank fit`");
    assert!(!d.path().join("new").exists());
    // a log dir that cannot be created
    let out = lowrank().args(["run", "--config"]).arg(&cfg).arg("--log-dir").arg(cfg.join("sub")).output().unwrap();
    usage_error(&out, "sub");
    // a finished run does not resume (it would fit again and append a second trace),
    // and --resume takes no --set
    let out = lowrank().args(["run", "--resume"]).arg(logs.join("0")).output().unwrap();
    usage_error(&out, "already finished (max_iters");
    let out = lowrank().args(["run", "--resume"]).arg(logs.join("0")).args(["--set", "reg_user=1"]).output().unwrap();
    usage_error(&out, "--config and --set cannot change it");
    assert_eq!(std::fs::read_to_string(logs.join("0/trace.jsonl")).unwrap().lines().count(), 4);
}

#[test]
fn outputs_never_overwrite_inputs() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("r.tsv");
    std::fs::write(&data, "1\t1\t5\n1\t2\t3\n2\t1\t4\n2\t2\t2\n3\t1\t1\n").unwrap();
    let before = std::fs::read(&data).unwrap();
    for flag in ["--save-model", "--trace", "--checkpoint"] {
        let out =
            lowrank().args(["fit", "--algo", "baseline", "--data"]).arg(&data).arg(flag).arg(&data).output().unwrap();
        usage_error(&out, &format!("{flag} {} is an input file", data.display()));
    }
    // a split that would write an empty test set
    let out = lowrank()
        .args(["split", "--fraction", "0.0001", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(d.path().join("sp"))
        .output()
        .unwrap();
    usage_error(&out, "test.tsv would be empty (0 of 5 ratings)");
    std::fs::rename(&data, d.path().join("train.tsv")).unwrap();
    let out = lowrank()
        .args(["split", "--fraction", "0.4", "--data"])
        .arg(d.path().join("train.tsv"))
        .arg("--out")
        .arg(d.path())
        .output()
        .unwrap();
    usage_error(&out, "is an input file");
    assert_eq!(std::fs::read(d.path().join("train.tsv")).unwrap(), before);
    // a checkpoint resumes only on its own data (same shape, other values: refused)
    let ck = d.path().join("ck.bin");
    let other = d.path().join("other.tsv");
    std::fs::write(&other, "1\t1\t5\n1\t2\t3\n2\t1\t4\n2\t2\t2\n3\t1\t2\n").unwrap();
    let fit = |data: &std::path::Path, resume: bool| {
        let mut c = lowrank();
        c.args(["fit", "--algo", "als", "--rank", "1", "--epochs", "3", "-q", "--checkpoint"])
            .arg(&ck)
            .arg("--data")
            .arg(data);
        if resume {
            c.arg("--resume");
        }
        c.output().unwrap()
    };
    ok(&fit(&d.path().join("train.tsv"), false));
    usage_error(&fit(&other, true), "was made on other data (same shape, different entries)");
    ok(&fit(&d.path().join("train.tsv"), true));
    // outputs that cannot be written, or two outputs on one file, fail before the fit
    let train = d.path().join("train.tsv");
    let out = lowrank()
        .args(["fit", "--algo", "baseline", "--data"])
        .arg(&train)
        .arg("--save-model")
        .arg(d.path())
        .output()
        .unwrap();
    usage_error(&out, "--save-model");
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a directory"));
    let same = d.path().join("same.out");
    let out = lowrank()
        .args(["fit", "--algo", "baseline", "--data"])
        .arg(&train)
        .arg("--trace")
        .arg(&same)
        .arg("--save-model")
        .arg(&same)
        .output()
        .unwrap();
    usage_error(&out, "--trace and --save-model are the same file");
    // with positional ids, a larger ground truth declares the full shape (a planted
    // problem whose last columns were not sampled)
    let sp = d.path().join("sp");
    ok(&lowrank()
        .args(["gen", "planted", "--n", "30", "--rank", "2", "--observed", "25", "--seed", "3", "--out"])
        .arg(&sp)
        .output()
        .unwrap());
    let out = lowrank()
        .args(["fit", "--algo", "baseline", "--json", "--ids", "zero-based", "--data"])
        .arg(sp.join("train.tsv"))
        .arg("--truth")
        .arg(sp.join("gt.npy"))
        .output()
        .unwrap();
    ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["rel_error"].as_f64().is_some_and(f64::is_finite), "{v}");
    // a config file is an input too; a generated problem takes no --truth
    let cfg = d.path().join("b.toml");
    std::fs::write(&cfg, "algo = \"baseline\"\n").unwrap();
    let out = lowrank()
        .args(["fit", "--data"])
        .arg(&train)
        .arg("--config")
        .arg(&cfg)
        .arg("--save-model")
        .arg(&cfg)
        .output()
        .unwrap();
    usage_error(&out, "is an input file");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "algo = \"baseline\"\n");
    let out = lowrank()
        .args(["fit", "--algo", "baseline", "--set", "problem=planted", "--truth", "none.npy"])
        .output()
        .unwrap();
    usage_error(&out, "'truth' goes with 'data' files");
    // a ground truth of another shape names its file
    let truth = d.path().join("truth.csv");
    std::fs::write(&truth, "1,2\n3,4\n").unwrap();
    let out = lowrank()
        .args(["fit", "--algo", "baseline", "--data"])
        .arg(d.path().join("train.tsv"))
        .arg("--truth")
        .arg(&truth)
        .output()
        .unwrap();
    usage_error(&out, "truth.csv: the ground truth is 2x2 but the data is 3x2");
    // --checkpoint-every without --checkpoint would silently do nothing
    let out = lowrank()
        .args(["fit", "--algo", "baseline", "--checkpoint-every", "2", "--data"])
        .arg(d.path().join("train.tsv"))
        .output()
        .unwrap();
    usage_error(&out, "--checkpoint-every needs --checkpoint");
    // a tensor given to a matrix algorithm names the file; a config with bad TOML gets a TOML hint
    let tensor = d.path().join("t.npy");
    ok(&lowrank().args(["gen", "tensor", "--dims", "4", "--rank", "2", "--out"]).arg(&tensor).output().unwrap());
    let out = lowrank().args(["fit", "--algo", "als", "--data"]).arg(&tensor).output().unwrap();
    usage_error(&out, "t.npy: the file holds a 3-way tensor, but 'als' fits matrices");
    // nmf names the file and the first negative value, dense (positions as in the file) or triplets (ids)
    let neg = d.path().join("neg.csv");
    std::fs::write(&neg, "1,2,3\n4,-5,6\n7,8,-9\n").unwrap();
    let out = lowrank()
        .args(["fit", "--algo", "nmf", "--rank", "1", "--format", "dense", "--data"])
        .arg(&neg)
        .output()
        .unwrap();
    usage_error(&out, "neg.csv: nmf needs non-negative data: row 2, column 2 (counting from 1) is -5 (2 values");
    let neg = d.path().join("neg.tsv");
    std::fs::write(&neg, "u1\ti1\t3\nu1\ti2\t-2\nu2\ti1\t1\n").unwrap();
    let out = lowrank().args(["fit", "--algo", "nmf", "--rank", "1", "--data"]).arg(&neg).output().unwrap();
    usage_error(&out, "neg.tsv: nmf needs non-negative data: the entry of row 'u1', column 'i2' is -2;");
    let bad = d.path().join("bad.toml");
    std::fs::write(&bad, "algo = \"als\"\nrank = \n").unwrap();
    let out = lowrank().args(["fit", "--config"]).arg(&bad).output().unwrap();
    usage_error(&out, "bad.toml:2: invalid TOML");
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint: fix the TOML"));
}

#[test]
fn sweep_runs_the_grid_skips_finished_runs_and_tabulates() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path());
    let logs = d.path().join("logs");
    let sweep = |extra: &[&str]| {
        lowrank()
            .args(["sweep", "--config"])
            .arg(&cfg)
            .args(["--grid", "reg_user=1,10", "--seeds", "2", "--jobs", "2", "--name", "s", "--log-dir"])
            .arg(&logs)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = sweep(&[]);
    ok(&out);
    let csv = std::fs::read_to_string(logs.join("s/results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    assert!(csv.starts_with("run,reg_user,seed,"), "{csv}");
    assert!(logs.join("s/results.md").exists());
    // the status table, as a file: every point done, no scratch files left
    let status = std::fs::read_to_string(logs.join("s/status.md")).unwrap();
    assert!(status.contains("4/4 finished, 0 failed"), "{status}");
    assert_eq!(status.matches("| done |").count(), 4, "{status}");
    assert!(!logs.join("s/.status").exists());
    let out = sweep(&[]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("4 already finished"));
    assert_eq!(std::fs::read_dir(logs.join("s")).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count(), 4);
    // a run left interrupted (summary says so, a checkpoint at iteration 1) is resumed, not rerun elsewhere
    let run0 = logs.join("s/0");
    let summary = std::fs::read_to_string(run0.join("summary.json")).unwrap();
    std::fs::write(run0.join("summary.json"), summary.replace("\"max_iters\"", "\"interrupted\"")).unwrap();
    let out = lowrank()
        .args(["fit", "-q", "--epochs", "1", "--config"])
        .arg(run0.join("config.toml"))
        .arg("--checkpoint")
        .arg(run0.join("checkpoint.bin"))
        .output()
        .unwrap();
    ok(&out);
    let out = sweep(&[]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 already finished, 1 to resume"), "{out:?}");
    assert!(std::fs::read_to_string(run0.join("summary.json")).unwrap().contains("\"max_iters\""));
    assert!(!run0.join("checkpoint.bin").exists());
    assert_eq!(std::fs::read_dir(logs.join("s")).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count(), 4);
    // bad grids fail before any run starts: a wrongly typed value, an empty
    // value, an axis given twice
    for (grid, needle) in [
        (&["--grid", "reg_item=a,b"][..], "setting 'reg_item' = \"a\""),
        (&["--grid", "reg_item=a,b"][..], "(from --grid)"),
        (&["--grid", "reg_item=1,,2"][..], "no empty value"),
        (&["--grid", "reg_item=1", "--grid", "reg-item=2"][..], "given twice"),
        // a --set of a grid key would silently lose to the grid
        (&["--set", "reg-user=3"][..], "--set reg_user=... and --grid both give 'reg_user'"),
        (&["--set", "seed=3"][..], "and --seeds both give 'seed'"),
    ] {
        let out = sweep(grid);
        usage_error(&out, needle);
    }
    assert_eq!(std::fs::read_dir(logs.join("s")).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count(), 4);
    // one sweep at a time per directory: while a live process (this test)
    // holds its lock, a second sweep is refused and starts nothing
    let lock = logs.join("s").join("sweep.lock");
    assert!(!lock.exists(), "the lock is removed when a sweep ends");
    std::fs::write(&lock, format!("{}\n", std::process::id())).unwrap();
    let out = sweep(&["--grid", "reg_item=3"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("being run by another process"), "{err}");
    assert_eq!(std::fs::read_dir(logs.join("s")).unwrap().filter(|e| e.as_ref().unwrap().path().is_dir()).count(), 4);
    std::fs::remove_file(&lock).unwrap();
}

#[test]
fn a_sweep_marks_runs_that_failed() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("gd.toml");
    std::fs::write(&cfg, "algo = \"gd\"\nproblem = \"planted\"\nproblem_n = 20\nproblem_rank = 2\nproblem_observed = 150\nrank = 2\nepochs = 5\noptimizer = \"sgd\"\n").unwrap();
    let out = lowrank()
        .args(["sweep", "--config"])
        .arg(&cfg)
        .args(["--grid", "lr=0.01,1e10", "--name", "f", "--log-dir"])
        .arg(d.path().join("logs"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 2 runs failed; first: lr=1e10"), "{out:?}");
    let csv = std::fs::read_to_string(d.path().join("logs/f/results.csv")).unwrap();
    let row = csv.lines().find(|l| l.contains(",1e10,")).unwrap_or_else(|| panic!("{csv}"));
    assert!(row.ends_with(",failed"), "{csv}");
}

#[test]
fn plots_and_a_report_people_can_open() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(d.path());
    let logs = d.path().join("logs");
    for _ in 0..2 {
        ok(&lowrank().args(["run", "-q", "--config"]).arg(&cfg).arg("--log-dir").arg(&logs).output().unwrap());
    }
    let svg = d.path().join("c.svg");
    ok(&lowrank().arg("plot").arg(logs.join("0")).arg(logs.join("1")).arg("--out").arg(&svg).output().unwrap());
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("objective"));
    let png = d.path().join("c.png");
    ok(&lowrank().arg("plot").arg(logs.join("0")).arg("--out").arg(&png).output().unwrap());
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    // a run without a trace
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    usage_error(
        &lowrank().arg("plot").arg(&empty).arg("--out").arg(d.path().join("x.svg")).output().unwrap(),
        "trace.jsonl",
    );
    assert!(!d.path().join("x.svg").exists());
    // the report
    let html = d.path().join("report.html");
    ok(&lowrank().arg("report").arg(&logs).arg("--out").arg(&html).output().unwrap());
    // the report never overwrites what it reads
    let out = lowrank().arg("report").arg(&logs).arg("--out").arg(logs.join("0/summary.json")).output().unwrap();
    usage_error(&out, "must end in .html");
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<tr><td><a href=").count(), 2);
    assert!(page.contains("<svg"));
    assert!(
        !page.contains("<script src") && !page.contains("<link") && !page.contains("src=\"http"),
        "external resources"
    );
    // render it in a real browser when one is installed
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
    else {
        eprintln!("notice: no chromium found; browser rendering of the report skipped");
        return;
    };
    let profile = d.path().join("profile");
    let shot = d.path().join("shot.png");
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,900",
    ];
    let url = format!("file://{}", html.display());
    let dom = std::process::Command::new(chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("id=\"runs\"") && dom.matches("<svg").count() >= 2, "rendered DOM lacks the table or plots");
    let out = std::process::Command::new(chromium)
        .args(flags)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success() || shot.exists(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 20_000, "screenshot too small: {} bytes", png.len());
}

#[test]
fn decomposition_and_learning_rate_heatmaps() {
    let d = tempfile::tempdir().unwrap();
    let logs = d.path().join("logs");
    let cfg = d.path().join("c.toml");
    std::fs::write(&cfg, "algo = \"altmin\"\nproblem = \"checkerboard\"\nrank = 2\nepochs = 5\n").unwrap();
    ok(&lowrank().args(["run", "-q", "--config"]).arg(&cfg).arg("--log-dir").arg(&logs).output().unwrap());
    let png = d.path().join("h.png");
    ok(&lowrank().arg("plot").arg(logs.join("0")).args(["--kind", "heatmap", "--out"]).arg(&png).output().unwrap());
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    let blog = d.path().join("b.toml");
    std::fs::write(
        &blog,
        "algo = \"gd\"\nproblem = \"blog\"\nrank = 2\noptimizer = \"adagrad\"\nlr = 0.1\ncost = \"rmse\"\ninit = \"blog\"\nrecord_lr = true\nepochs = 50\n",
    )
    .unwrap();
    ok(&lowrank().args(["run", "-q", "--config"]).arg(&blog).arg("--log-dir").arg(&logs).output().unwrap());
    let svg = d.path().join("lr.svg");
    ok(&lowrank().arg("plot").arg(logs.join("1")).args(["--kind", "lr-heatmap", "--out"]).arg(&svg).output().unwrap());
    assert!(std::fs::read_to_string(&svg).unwrap().contains("lr_u @ 50"));
    // the blog's animation: an animated GIF with one frame per requested iteration
    let gif = d.path().join("lr.gif");
    ok(&lowrank()
        .arg("plot")
        .arg(logs.join("1"))
        .args(["--kind", "lr-heatmap", "--frames", "5", "--out"])
        .arg(&gif)
        .output()
        .unwrap());
    let bytes = std::fs::read(&gif).unwrap();
    assert!(bytes.starts_with(b"GIF89a"));
    assert_eq!(bytes.windows(2).filter(|w| w == &[0x21, 0xF9]).count(), 5, "one frame each");
    // a run without learning rates: clear error, nothing written
    let none = d.path().join("none.svg");
    usage_error(
        &lowrank().arg("plot").arg(logs.join("0")).args(["--kind", "lr-heatmap", "--out"]).arg(&none).output().unwrap(),
        "learning rates",
    );
    assert!(!none.exists());
}
