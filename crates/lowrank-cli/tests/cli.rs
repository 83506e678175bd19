//! End-to-end tests of the `lowrank` binary: the bad-input contract (one
//! line `error: FILE:LINE: reason`, exit code 2, no panic), the formats that
//! must load, and the `fit --json` contract.

use std::io::Write;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn lowrank() -> Command {
    Command::cargo_bin("lowrank").unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Run `inspect` on a file and check the error contract; returns stderr.
fn bad(path: &Path, extra: &[&str], needle: &str) -> String {
    let out = lowrank().arg("inspect").arg("--data").arg(path).args(extra).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "expected exit 2 for {}: stderr {err}", path.display());
    let first = err.lines().next().unwrap_or("");
    assert!(first.starts_with("error: "), "first line not an error line: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.to_lowercase().contains(&needle.to_lowercase()), "stderr lacks '{needle}': {err}");
    err
}

fn npy(descr: &str, shape: &str, fortran: bool, data: &[u8]) -> Vec<u8> {
    let mut h = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(data);
    v
}

#[test]
fn bad_inputs_give_one_clear_line_and_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    bad(&p.join("missing.tsv"), &[], "missing.tsv");
    bad(p, &[], "directory");
    bad(&write(p, "empty.tsv", b""), &[], "empty");
    bad(&write(p, "header.csv", b"user,item,rating\n"), &[], "header but no data");
    bad(&write(p, "cols.tsv", b"1\t2\t3\n4\t5\n"), &[], "cols.tsv:2:");
    bad(&write(p, "nonnum.tsv", b"1\t2\t3\n4\t5\tx\n"), &[], "nonnum.tsv:2: the rating 'x' is not a number");
    bad(&write(p, "nan.tsv", b"1\t2\t3\n4\t5\tnan\n"), &[], "nan.tsv:2:");
    bad(&write(p, "inf.tsv", b"1\t2\t3\n4\t5\tinf\n"), &[], "infinite");
    bad(&write(p, "big.tsv", b"1\t2\t3\n4\t5\t1e300\n"), &[], "overflows");
    let e = bad(&write(p, "dup.tsv", b"1\t2\t3\n7\t8\t1\n1\t2\t4\n"), &[], "dup.tsv:3: duplicate");
    assert!(e.contains("line 1"), "{e}");
    bad(&write(p, "sep.txt", b"1;2;3\n4;5;6\n"), &[], "wrong separator");
    let huge = b"# ids\n1\t1\t5\n1000000000000000000\t2\t3\n";
    bad(&write(p, "huge.tsv", huge), &["--ids", "zero-based"], "huge.tsv:3: index 1000000000000000000 is too large");
    bad(&write(p, "nobanner.mtx", b"3 3 1\n1 1 1.0\n"), &[], "banner");
    let mm = |body: &str| format!("%%MatrixMarket matrix coordinate real general\n% a comment\n{body}");
    bad(&write(p, "zero.mtx", mm("3 3 1\n0 1 1.0\n").as_bytes()), &[], "zero.mtx:4: index 0");
    bad(&write(p, "oob.mtx", mm("3 3 1\n4 1 1.0\n").as_bytes()), &[], "outside the declared");
    bad(&write(p, "short.mtx", mm("3 3 2\n1 1 1.0\n").as_bytes()), &[], "only 1 entries but 2");
    bad(&write(p, "nan.mtx", mm("3 3 1\n1 1 nan\n").as_bytes()), &[], "nan.mtx:4: the value is NaN (a coordinate file");
    bad(
        &write(p, "complex.mtx", b"%%MatrixMarket matrix coordinate complex general\n1 1 1\n1 1 1 0\n"),
        &[],
        "complex",
    );
    bad(&write(p, "pattern.mtx", b"%%MatrixMarket matrix coordinate pattern general\n1 1 1\n1 1\n"), &[], "pattern");
    // a bad banner word is the banner's line, not the size line's
    bad(
        &write(p, "layout.mtx", b"%%MatrixMarket matrix foo real general\n2 2 1\n1 1 1\n"),
        &[],
        "layout.mtx:1: unknown layout 'foo'",
    );
    let sym = b"%%MatrixMarket matrix coordinate real symmetric\n2 3 1\n2 1 1\n";
    bad(&write(p, "sym.mtx", sym), &[], "sym.mtx:2: a symmetric matrix must be square");
    let int = b"%%MatrixMarket matrix coordinate integer general\n2 2 1\n2 1 1.5\n";
    bad(&write(p, "int.mtx", int), &[], "int.mtx:3: '1.5' is not an integer");
    for (name, header) in [("t0.txt", "# tensor 0 2 2"), ("t2.txt", "# tensor 2 2"), ("ta.txt", "# tensor a b c")] {
        let body = format!("{header}\n0 0 0 1\n");
        bad(&write(p, name, body.as_bytes()), &[], &format!("{name}:1: malformed header"));
    }
    bad(&write(p, "big.csv", b"1.5,2,3\n4,1e39,6\n"), &[], "big.csv:2: the cell '1e39' is too large");
    let swapped = b"movieId,userId,rating,timestamp\n1,2,3,4\n";
    bad(&write(p, "swapped.csv", swapped), &[], "swapped.csv:1: the header names 'movieId' first");
    // one stray huge id with positional ids: refused before allocating a row per id
    let stray = b"0\t0\t4\n1\t1\t3\n999999999\t2\t5\n";
    bad(&write(p, "stray.tsv", stray), &["--ids", "zero-based"], "1000000000 users (the largest user index) needs");
    // the memory guards respect an address-space limit (ulimit -v), not only the machine's memory
    if cfg!(target_os = "linux") {
        let tns = write(p, "big.tns", b"0 0 0 1\n800 800 800 1\n");
        let bin = assert_cmd::cargo::cargo_bin("lowrank");
        let script = format!("ulimit -v 4000000; exec '{}' inspect --data '{}'", bin.display(), tns.display());
        let out = std::process::Command::new("bash").args(["-c", &script]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("more than this process may use"), "{err}");
    }
    // tiny files declaring huge shapes: refused before allocating
    bad(&write(p, "hugenpy.npy", &npy("<f8", "(100000000, 100000000)", false, &[0u8; 48])), &[], "needs");
    bad(&write(p, "hugearr.mtx", b"%%MatrixMarket matrix array real general\n100000000 100000000\n1\n"), &[], "needs");
    bad(&write(p, "shortnpy.npy", &npy("<f8", "(20000, 20000)", false, &[0u8; 48])), &[], "truncated");
    let dup = b"%%MatrixMarket matrix coordinate real symmetric\n3 3 3\n2 1 1\n3 3 2\n1 2 5\n";
    bad(&write(p, "symdup.mtx", dup), &[], "symdup.mtx:5: duplicate entry (1, 2): also on line 3");
    bad(&write(p, "magic.npy", b"NOTNUMPYDATA"), &[], "magic");
    bad(&write(p, "trunc.npy", &npy("<f8", "(2, 2)", false, &[0u8; 16])), &[], "truncated");
    bad(&write(p, "int.npy", &npy("<i8", "(2, 2)", false, &[0u8; 32])), &[], "unsupported dtype");
    bad(&write(p, "4d.npy", &npy("<f8", "(1, 1, 1, 1)", false, &[0u8; 8])), &[], "dimensions");
    let vals = |x: [f64; 2]| [x[0].to_le_bytes(), x[1].to_le_bytes()].concat();
    let infv = npy("<f8", "(1, 2)", false, &vals([1.0, f64::INFINITY]));
    bad(&write(p, "infv.npy", &infv), &[], "infv.npy: row 0, column 1 (0-based): the value inf is infinite");
    let bigv = npy("<f8", "(1, 2)", false, &vals([1e300, 1.0]));
    bad(&write(p, "bigv.npy", &bigv), &[], "bigv.npy: row 0, column 0 (0-based): the value 1e300 is too large");
    bad(&write(p, "ragged.csv", b"1.5,2.5,3.5,4.5,5.5\n1.5,2.5\n"), &[], "ragged.csv:2: ragged");
    bad(&write(p, "allnan.csv", b"nan,,nan,nan,nan\n,,,,\n"), &[], "no observed");
    let mut garbage = vec![0u8, 159, 146, 150, 0, 1, 2, 3];
    garbage.extend((0..5000).map(|i| (i * 7 % 256) as u8));
    bad(&write(p, "garbage.bin", &garbage), &[], "binary");
    let mut long = b"1\t2\t".to_vec();
    long.extend(std::iter::repeat_n(b'9', 5 << 20));
    long.push(b'\n');
    bad(&write(p, "long.tsv", &long), &[], "longer than");
}

fn inspect_json(path: &Path, extra: &[&str]) -> serde_json::Value {
    let out = lowrank().arg("inspect").arg("--json").arg("--data").arg(path).args(extra).output().unwrap();
    assert!(out.status.success(), "inspect failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn formats_that_must_load() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    // a UTF-8 byte order mark is not part of the first id (or number)
    let v = inspect_json(&write(p, "u.data", b"\xEF\xBB\xBF1\t1\t5\t0\n1\t2\t3\t0\n2\t1\t4\t0\n"), &[]);
    assert_eq!((v["rows"].as_u64(), v["integer_ids"].as_bool()), (Some(2), Some(true)), "{v}");
    let v = inspect_json(&write(p, "bom.csv", b"\xEF\xBB\xBF1.5,2,3\n4,5,6\n"), &[]);
    assert_eq!(v["kind"], "dense", "{v}");
    // a separator ending every line is not an empty last column
    let v = inspect_json(&write(p, "trail.csv", b"1,1,5,\n1,2,3,\n2,1,4,\n"), &[]);
    assert_eq!((v["kind"].as_str(), v["entries"].as_u64()), (Some("ratings"), Some(3)), "{v}");
    // --format movielens-csv on a file without a header keeps the first rating
    let v = inspect_json(&write(p, "nohdr.csv", b"1,2,3.5,4\n2,3,4,5\n"), &["--format", "movielens-csv"]);
    assert_eq!(v["entries"], 2, "{v}");
    // a general array lists its columns in order (3x2 here)
    let v =
        inspect_json(&write(p, "gen.mtx", b"%%MatrixMarket matrix array real general\n3 2\n1\n2\n3\n4\n5\n6\n"), &[]);
    assert_eq!((v["rows"].as_u64(), v["cols"].as_u64(), v["observed"].as_u64()), (Some(3), Some(2), Some(6)), "{v}");
    // a symmetric array lists its lower triangle, column by column
    let v = inspect_json(&write(p, "symarr.mtx", b"%%MatrixMarket matrix array real symmetric\n2 2\n1\n2\n3\n"), &[]);
    assert_eq!((v["rows"].as_u64(), v["cols"].as_u64(), v["observed"].as_u64()), (Some(2), Some(2), Some(4)), "{v}");
    // a coordinate file may declare far more rows than it has entries
    let sparse = b"%%MatrixMarket matrix coordinate real general\n10000000 10000000 1\n5 7 1.5\n";
    let v = inspect_json(&write(p, "wide.mtx", sparse), &[]);
    assert_eq!(v["entries"], 1, "{v}");
    // CRLF endings, blank trailing lines
    let v = inspect_json(&write(p, "crlf.tsv", b"1\t2\t3\r\n2\t1\t4\r\n\r\n\n"), &[]);
    assert_eq!(v["entries"], 2);
    // string ids and ids overflowing u64, with a header
    let v = inspect_json(
        &write(p, "ids.csv", b"user,item,rating\nalice,x1,3\n99999999999999999999999,x1,4\nbob,x2,5\n"),
        &[],
    );
    assert_eq!(
        (v["entries"].as_u64(), v["rows"].as_u64(), v["integer_ids"].as_bool()),
        (Some(3), Some(3), Some(false))
    );
    // ratings.dat and ratings.csv
    assert_eq!(
        inspect_json(&write(p, "ratings.dat", b"1::10::5::978300760\n2::10::3::978302109\n"), &[])["entries"],
        2
    );
    assert_eq!(
        inspect_json(&write(p, "ratings.csv", b"userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n"), &[])["entries"],
        1
    );
    // Matrix Market with comments
    let v = inspect_json(
        &write(p, "a.mtx", b"%%MatrixMarket matrix coordinate real general\n% c\n%\n3 4 2\n1 1 1.5\n3 4 -2\n"),
        &[],
    );
    assert_eq!((v["rows"].as_u64(), v["cols"].as_u64(), v["entries"].as_u64()), (Some(3), Some(4), Some(2)));
    // dense with NaN and empty cells
    let v = inspect_json(&write(p, "dense.csv", b"0.5,NaN,1.5\n,2.5,3.5\n"), &[]);
    assert_eq!((v["kind"].as_str(), v["observed"].as_u64()), (Some("dense"), Some(4)));
    // npy: f32 Fortran-order 2-D, and f64 3-D
    let f32s: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let v = inspect_json(&write(p, "m.npy", &npy("<f4", "(2, 3)", true, &f32s)), &[]);
    assert_eq!((v["rows"].as_u64(), v["cols"].as_u64()), (Some(2), Some(3)));
    let f64s: Vec<u8> = (0..24).flat_map(|x| (x as f64).to_le_bytes()).collect();
    assert_eq!(
        inspect_json(&write(p, "t.npy", &npy("<f8", "(2, 3, 4)", false, &f64s)), &[])["dims"],
        serde_json::json!([2, 3, 4])
    );
    // gzip, detected from the inner name
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n").unwrap();
    let v = inspect_json(&write(p, "u.data.gz", &gz.finish().unwrap()), &[]);
    assert_eq!(v["entries"], 2);
}

#[test]
fn fit_json_contract_and_model_round_trip() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let out = lowrank()
        .args([
            "gen",
            "ratings",
            "--users",
            "200",
            "--items",
            "100",
            "--count",
            "4000",
            "--stars",
            "--test-fraction",
            "0.2",
            "--out",
        ])
        .arg(p.join("r.tsv"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = p.join("m.safetensors");
    let out = lowrank()
        .args(["fit", "--algo", "baseline", "--json", "--seed", "3", "--data"])
        .arg(p.join("r.tsv"))
        .arg("--test")
        .arg(p.join("r.test.tsv"))
        .arg("--save-model")
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "exactly one JSON object: {stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    for key in ["algo", "rank", "epochs", "train_rmse", "test_rmse", "test_mae", "fit_seconds", "threads", "seed"] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    let test_rmse = v["test_rmse"].as_f64().unwrap();
    assert!(test_rmse > 0.0 && test_rmse < 2.0);
    // eval of the saved model reproduces the test RMSE (same clipping 1..5)
    let out = lowrank()
        .args(["eval", "--json", "--clip", "1,5", "--model"])
        .arg(&model)
        .arg("--data")
        .arg(p.join("r.test.tsv"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!((e["rmse"].as_f64().unwrap() - test_rmse).abs() < 1e-9, "{e} vs {test_rmse}");
    // ... and so it does by default, for clipping and uncentred algorithms
    // alike (the model keeps the fit's clipping range and its prediction for
    // unseen ids, the training mean); --no-clip scores the raw predictions
    let test_with_unseen = p.join("unseen.tsv");
    let mut text = std::fs::read_to_string(p.join("r.test.tsv")).unwrap();
    text.push_str("new-user\t0\t3\n0\tnew-item\t5\n");
    std::fs::write(&test_with_unseen, text).unwrap();
    for algo in ["als", "svt", "nmf", "hard-impute"] {
        let model = p.join(format!("{algo}.safetensors"));
        let out = lowrank()
            .args(["fit", "--algo", algo, "--rank", "3", "--epochs", "20", "--json", "-q", "--data"])
            .arg(p.join("r.tsv"))
            .arg("--test")
            .arg(&test_with_unseen)
            .arg("--save-model")
            .arg(&model)
            .output()
            .unwrap();
        assert!(out.status.success(), "{algo}: {}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let eval = |extra: &[&str]| {
            let out = lowrank()
                .args(["eval", "--json"])
                .args(extra)
                .arg("--model")
                .arg(&model)
                .arg("--data")
                .arg(&test_with_unseen)
                .output()
                .unwrap();
            assert!(out.status.success(), "{algo}: {}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        };
        let e = eval(&[]);
        assert_eq!(e["unseen"], 2, "{algo}: {e}");
        let (got, want) = (e["rmse"].as_f64().unwrap(), v["test_rmse"].as_f64().unwrap());
        assert!((got - want).abs() < 1e-9, "{algo}: eval {got} vs fit {want}");
        let raw = eval(&["--no-clip"])["rmse"].as_f64().unwrap();
        assert!(raw >= got - 1e-12, "{algo}: clipping to the data's range cannot hurt: {raw} < {got}");
    }
    // recommend for a known user, excluding seen items
    let out = lowrank()
        .args(["recommend", "--user", "0", "-n", "5", "--json", "--model"])
        .arg(&model)
        .arg("--exclude-seen")
        .arg(p.join("r.tsv"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["items"].as_array().unwrap().len(), 5);
    // gen refuses an extension that promises another format, and an empty problem
    for (args, needle) in [
        (&["gen", "ratings", "--out", "x.tsv.gz"][..], "this writes tab-separated text"),
        (&["gen", "ratings", "--count", "0", "--out", "x.tsv"][..], "--count must be at least 1"),
        (&["gen", "tensor", "--out", "t.csv"][..], "this writes a 3-D .npy array"),
        (&["gen", "example", "lab", "--out", "e.npy"][..], "this writes a dense CSV"),
    ] {
        let out = lowrank().current_dir(p).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(needle), "{args:?}: {out:?}");
    }
    // fold-in: a valid new user gets a list; an item rated twice or a rating
    // beyond f32 is an error naming the item
    let fold = |spec: &str| {
        lowrank().args(["recommend", "-n", "3", "--json", "--fold-in", spec, "--model"]).arg(&model).output().unwrap()
    };
    let out = fold("0:5,1:3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (spec, needle) in [("0:5,1:3,0:4", "item '0' is rated twice"), ("0:5,1:1e300", "of item '1' is not a finite")] {
        let out = fold(spec);
        assert_eq!(out.status.code(), Some(2), "{spec}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{spec}: {err}");
    }
    // a baseline model has no item factors: no similar items (it listed zeros), and -n 0 lists nothing
    let out = lowrank().args(["recommend", "--similar-to", "0", "--model"]).arg(&model).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no item factors"), "{out:?}");
    let out = lowrank().args(["recommend", "--user", "0", "-n", "0", "--model"]).arg(&model).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // evaluating on data none of whose entries the model knows
    let other = write(p, "other.tsv", b"u1\ti1\t3\nu2\ti2\t4\n");
    let out = lowrank().args(["eval", "--model"]).arg(&model).arg("--data").arg(&other).output().unwrap();
    assert!(out.status.success() && String::from_utf8_lossy(&out.stderr).contains("warning: none of the 2 entries"));
    // no test set -> test_rmse is null
    let out = lowrank().args(["fit", "--algo", "baseline", "--json", "--data"]).arg(p.join("r.tsv")).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["test_rmse"].is_null());
}

#[test]
fn usage_and_config_errors_exit_2() {
    let out = lowrank().args(["fit", "--algo", "nosuch", "--set", "problem=planted"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown algorithm"));
    let out = lowrank()
        .args(["fit", "--algo", "baseline", "--set", "problem=planted", "--set", "reg_usr=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean 'reg_user'"));
    let out = lowrank().args(["fit", "--bogus-flag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // a negative number is a value (then refused by the solver's range check,
    // naming the setting), not taken for an unknown flag
    let out = lowrank().args(["fit", "--algo", "sgd", "--set", "problem=planted", "--reg", "-1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reg") && !err.contains("unexpected argument"), "{err}");
}

#[test]
fn splits_are_deterministic_and_keep_ids() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let data = write(p, "r.csv", b"a,x,1\na,y,2\nb,x,3\nb,y,4\nc,z,5\nc,x,1\nd,y,2\nd,z,3\ne,x,4\ne,z,5\n");
    for run in ["1", "2"] {
        let out = lowrank()
            .args(["split", "--method", "holdout", "--fraction", "0.3", "--seed", "9", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(p.join(run))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let a = std::fs::read_to_string(p.join("1/test.csv")).unwrap();
    let b = std::fs::read_to_string(p.join("2/test.csv")).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.lines().count(), 3);
    assert!(a.lines().all(|l| l.chars().next().unwrap().is_ascii_lowercase()), "original ids kept: {a}");
    // text ratings are split line by line: values beyond f32's precision,
    // timestamps and the header stay as they were, and the parts add up to the input
    let text =
        "userId,movieId,rating,timestamp\n1,10,3.14159265358979,100\n1,11,16777217,101\n2,10,4,102\n2,12,5,103\n";
    let data = write(p, "ratings.csv", text.as_bytes());
    let out = lowrank()
        .args(["split", "--fraction", "0.5", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(p.join("v"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (train, test) = (
        std::fs::read_to_string(p.join("v/train.csv")).unwrap(),
        std::fs::read_to_string(p.join("v/test.csv")).unwrap(),
    );
    let header = text.lines().next().unwrap();
    assert!(train.starts_with(header) && test.starts_with(header), "{train}{test}");
    let mut lines: Vec<&str> = train.lines().skip(1).chain(test.lines().skip(1)).collect();
    lines.sort_unstable();
    let mut want: Vec<&str> = text.lines().skip(1).collect();
    want.sort_unstable();
    assert_eq!(lines, want);
    // comment lines (# or %) and blank lines are not ratings: no header is
    // invented and no rating is duplicated or moved to the other side
    let text = "1\t10\t3\n% a comment\n1\t11\t4\n\n# another\n2\t10\t5\n2\t12\t1\n";
    let data = write(p, "c.tsv", text.as_bytes());
    let out = lowrank()
        .args(["split", "--fraction", "0.5", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(p.join("c"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (train, test) = (
        std::fs::read_to_string(p.join("c/train.tsv")).unwrap(),
        std::fs::read_to_string(p.join("c/test.tsv")).unwrap(),
    );
    assert_eq!((train.lines().count(), test.lines().count()), (2, 2), "{train}|{test}");
    let mut lines: Vec<&str> = train.lines().chain(test.lines()).collect();
    lines.sort_unstable();
    assert_eq!(lines, ["1\t10\t3", "1\t11\t4", "2\t10\t5", "2\t12\t1"]);
    // the same entries as the split of the parsed ratings (triplets written from the store)
    let dense_like =
        write(p, "c.mtx", b"%%MatrixMarket matrix coordinate real general\n2 3 4\n1 1 3\n1 2 4\n2 1 5\n2 3 1\n");
    let out = lowrank()
        .args(["split", "--fraction", "0.5", "--data"])
        .arg(&dense_like)
        .arg("--out")
        .arg(p.join("m"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let values = |f: &str| -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_to_string(f).unwrap().lines().map(|l| l.rsplit('\t').next().unwrap().to_string()).collect();
        v.sort_unstable();
        v
    };
    let c_test = p.join("c/test.tsv");
    let m_test = p.join("m/test.tsv");
    assert_eq!(values(c_test.to_str().unwrap()), values(m_test.to_str().unwrap()));
    // a dense file is written as triplets
    let dense = write(p, "d.csv", b"1.5,,3\n4,5,6\n");
    let out = lowrank()
        .args(["split", "--fraction", "0.4", "--data"])
        .arg(&dense)
        .arg("--out")
        .arg(p.join("w"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(p.join("w/test.tsv")).unwrap().lines().count(), 2);
}

#[test]
fn demo_runs_without_files() {
    let out = lowrank().args(["demo", "--users", "300", "--items", "100", "--count", "6000"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("baseline") && s.contains("next:"), "{s}");
}

#[test]
fn tensor_text_format_and_eval_of_cp_and_dense_models() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    // coordinate text forced by --format (the name says nothing)
    let t = write(p, "t.txt", b"0 0 0 1.0\n1 2 3 2.5\n0 1 1 -1\n");
    let v = inspect_json(&t, &["--format", "tensor-text"]);
    assert_eq!(v["dims"], serde_json::json!([2, 3, 4]));
    // a CP model saved by fit is evaluated on its tensor, and matches fit's train RMSE
    let tn = p.join("t.npy");
    let out = lowrank().args(["gen", "tensor", "--dims", "6", "--rank", "2", "--out"]).arg(&tn).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cp = p.join("cp.safetensors");
    let out = lowrank()
        .args(["fit", "--algo", "cp-als", "--rank", "2", "--epochs", "30", "--json", "--data"])
        .arg(&tn)
        .arg("--save-model")
        .arg(&cp)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // `tensor cp` is the same run under its own name; another --algo is refused
    let out = lowrank()
        .args(["tensor", "cp", "--rank", "2", "--epochs", "30", "--json", "--data"])
        .arg(&tn)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((again["algo"].as_str(), &again["rel_error"]), (Some("cp-als"), &fit["rel_error"]));
    let out = lowrank().args(["tensor", "cp", "--algo", "als", "--data"]).arg(&tn).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("runs cp-als"));
    let out = lowrank().args(["eval", "--json", "--model"]).arg(&cp).arg("--data").arg(&tn).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["n"], 216);
    let (a, b) = (e["rmse"].as_f64().unwrap(), fit["train_rmse"].as_f64().unwrap());
    assert!((a - b).abs() <= 1e-12 + 1e-9 * b, "{a} vs {b}");
    // a CP model on a matrix: one clear line, exit 2
    let m = write(p, "m.tsv", b"0\t0\t1\n1\t1\t2\n");
    let out = lowrank().args(["eval", "--model"]).arg(&cp).arg("--data").arg(&m).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("3-way tensor"));
    // a dense model (deep factorization) is evaluated by position on a dense matrix
    let dense = write(p, "d.csv", b"1,2,NaN\n2,4,6\n3,NaN,9\n");
    let dm = p.join("dense.safetensors");
    let out = lowrank()
        .args(["fit", "--algo", "deep", "--epochs", "200", "--set", "optimizer=sgd", "--set", "lr=0.05", "--json"])
        .args(["--set", "init_scale=0.1", "--data"])
        .arg(&dense)
        .arg("--save-model")
        .arg(&dm)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = lowrank().args(["eval", "--json", "--model"]).arg(&dm).arg("--data").arg(&dense).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["n"], 7);
    let (a, b) = (e["rmse"].as_f64().unwrap(), fit["train_rmse"].as_f64().unwrap());
    assert!((a - b).abs() <= 1e-9 * (1.0 + b), "{a} vs {b}");
    // triplets need positional ids for a dense model
    let out = lowrank().args(["eval", "--model"]).arg(&dm).arg("--data").arg(&m).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ids zero-based"));
    let out = lowrank()
        .args(["eval", "--json", "--ids", "zero-based", "--model"])
        .arg(&dm)
        .arg("--data")
        .arg(&m)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // a dense model fit to triplets keeps their ids: rows '1' and '3' (no
    // '2') are rows 0 and 1 of the model, and a test entry of row '2' is
    // unseen, with or without --ids (it used to be scored with row '3''s
    // value under --ids one-based); eval agrees with fit --test
    let gap = write(p, "gap.tsv", b"1\t1\t1\n1\t2\t2\n3\t1\t10\n3\t2\t20\n");
    let gap_test = write(p, "gap.test.tsv", b"2\t1\t5\n3\t2\t20\n");
    let gm = p.join("gap.safetensors");
    let out = lowrank()
        .args(["fit", "--algo", "nuclear-min", "--json", "-q", "--data"])
        .arg(&gap)
        .arg("--test")
        .arg(&gap_test)
        .arg("--save-model")
        .arg(&gm)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fit: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for ids in [&[][..], &["--ids", "one-based"][..]] {
        let out = lowrank()
            .args(["eval", "--json"])
            .args(ids)
            .arg("--model")
            .arg(&gm)
            .arg("--data")
            .arg(&gap_test)
            .output()
            .unwrap();
        assert!(out.status.success(), "{ids:?}: {}", String::from_utf8_lossy(&out.stderr));
        let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((e["n"].as_u64(), e["unseen"].as_u64()), (Some(2), Some(1)), "{ids:?}: {e}");
        // the unseen entry gets the training mean 8.25 (error 3.25), the seen one 20 within eps 1e-3
        let want = ((3.25f64 * 3.25) / 2.0).sqrt();
        let got = e["rmse"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-3, "{ids:?}: {got} vs {want}");
        assert!(
            (got - fit["test_rmse"].as_f64().unwrap()).abs() < 1e-12,
            "{ids:?}: eval {got} vs fit {}",
            fit["test_rmse"]
        );
    }
}

#[test]
fn a_ground_truth_must_give_every_entry() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let train = write(p, "train.txt", b"1 1 5\n1 2 3\n2 1 4\n2 3 1\n3 2 2\n3 3 5\n");
    for (name, body) in [("nan.csv", &b"5 3 nan\n4 0 1\n0 2 5\n"[..]), ("sparse.txt", &b"1 1 5\n2 2 1\n3 3 2\n"[..])] {
        let truth = write(p, name, body);
        let out = lowrank()
            .args(["fit", "--algo", "sgd", "--rank", "1", "-q", "--data"])
            .arg(&train)
            .arg("--truth")
            .arg(&truth)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(name) && err.contains("must give every entry"), "{name}: {err}");
    }
}

#[test]
fn sweep_names_stay_under_the_log_dir() {
    let d = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["--name", "../escape"], "plain name"),
        (vec!["--name", "a/b"], "plain name"),
        (vec!["--name", "ok", "--seeds", "0"], "--seeds must be at least 1"),
    ] {
        let out = lowrank()
            .args(["sweep", "--grid", "lr=0.1", "--log-dir"])
            .arg(d.path().join("logs"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(!d.path().join("escape").exists());
}

#[test]
fn an_output_directory_blocked_by_a_file_is_named() {
    let d = tempfile::tempdir().unwrap();
    let file = write(d.path(), "plain.txt", b"x");
    let out = lowrank()
        .args(["run", "--set", "algo=baseline", "--set", "problem=planted", "--set", "problem_n=10"])
        .args(["--set", "problem_observed=50", "--log-dir"])
        .arg(file.join("sub"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("plain.txt is a file, not a directory"), "{err}");
}
