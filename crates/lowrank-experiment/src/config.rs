//! Layered TOML configs: `--config a.toml --config b.toml --set key=value`.
//!
//! A config is a flat TOML table whose keys are the long flag names of
//! `lowrank fit` (`algo`, `data`, `rank`, `epochs`, `lr`, ...) plus each
//! algorithm's own settings. Later layers override earlier ones; `--set`
//! overrides every file. Values given with `--set` are parsed as TOML
//! literals (`lr=1e-3`, `nonneg=true`, `name="x"`), falling back to a plain
//! string (`optimizer=adam`).

use std::path::Path;

use lowrank::{Error, Result};
use toml::{Table, Value};

/// A merged, not yet validated configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawConfig {
    /// The merged table.
    pub table: Table,
    /// Where each key's value came from (a config file's path, or `--set`),
    /// for error messages.
    pub origin: std::collections::BTreeMap<String, String>,
}

/// Parse the value of a `--set key=value`.
pub fn parse_value(text: &str) -> Value {
    let t = text.trim();
    match format!("v = {t}").parse::<Table>() {
        Ok(mut tab) => tab.remove("v").unwrap_or_else(|| Value::String(t.to_string())),
        Err(_) => Value::String(t.to_string()),
    }
}

/// A TOML parse error at its line (1 + the newlines before the span: a span
/// at the start of a line is on that line), naming the key of a duplicate.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let span = e.span().map(|s| s.start.min(text.len())..s.end.min(text.len()));
    let line = span.as_ref().map_or(0, |s| 1 + text.as_bytes()[..s.start].iter().filter(|&&b| b == b'\n').count());
    let mut msg = format!("invalid TOML: {}", e.message().trim_end());
    if let Some(s) = span
        && msg.contains("duplicate")
    {
        let what = text.get(s).unwrap_or_default().trim();
        if !what.is_empty() && what.len() <= 60 && !what.contains('\n') {
            msg.push_str(&format!(" '{what}'"));
        }
    }
    Error::parse(path, line as u64, msg)
}

impl RawConfig {
    /// Merge `files` (in order) and then the `key=value` overrides.
    pub fn layered(files: &[impl AsRef<Path>], sets: &[String]) -> Result<RawConfig> {
        let mut cfg = RawConfig::default();
        for f in files {
            cfg.merge_file(f.as_ref())?;
        }
        for s in sets {
            cfg.set(s)?;
        }
        Ok(cfg)
    }

    /// Merge one TOML file over this config. Nested tables are flattened
    /// one level (`[params] lr = 1` is the same as `lr = 1`).
    pub fn merge_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let table: Table = text.parse().map_err(|e: toml::de::Error| toml_error(path, &text, &e))?;
        for (k, v) in table {
            match v {
                Value::Table(inner) if k == "params" => {
                    for (k2, v2) in inner {
                        self.origin.insert(k2.clone(), path.display().to_string());
                        self.table.insert(k2, v2);
                    }
                }
                v => {
                    self.origin.insert(k.clone(), path.display().to_string());
                    self.table.insert(k, v);
                }
            }
        }
        Ok(())
    }

    /// Apply one `key=value` override.
    pub fn set(&mut self, assignment: &str) -> Result<()> {
        let (k, v) = assignment
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("--set expects key=value, got '{assignment}'")))?;
        let k = k.trim();
        if k.is_empty() {
            return Err(Error::Config(format!("--set expects key=value, got '{assignment}'")));
        }
        let k = k.replace('-', "_");
        self.origin.insert(k.clone(), "--set".into());
        self.table.insert(k, parse_value(v));
        Ok(())
    }

    /// Insert a value unless the key is already set.
    pub fn set_default(&mut self, key: &str, v: impl Into<Value>) {
        self.table.entry(key.to_string()).or_insert(v.into());
    }

    /// `" (from FILE)"` / `" (from --set)"` for a key, for error messages;
    /// empty when the key was set by the program itself.
    pub fn from(&self, key: &str) -> String {
        self.origin.get(key).map(|o| format!(" (from {o})")).unwrap_or_default()
    }

    /// `e` with the origin of the setting it blames: the library's settings
    /// errors name the key (`setting 'lr' = "x": ...`) but cannot know which
    /// config file or `--set` gave it.
    pub fn locate(&self, e: Error) -> Error {
        match e {
            Error::Config(msg) => {
                let key = msg.split_once("setting '").and_then(|(_, rest)| rest.split_once('\'')).map(|(k, _)| k);
                match key.map(|k| self.from(k)) {
                    Some(from) if !from.is_empty() && !msg.contains(&from) => Error::Config(format!("{msg}{from}")),
                    _ => Error::Config(msg),
                }
            }
            e => e,
        }
    }

    /// A string value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.table.get(key).and_then(Value::as_str)
    }

    /// The config as TOML text (what `--print-config` shows and runs save).
    pub fn to_toml(&self) -> String {
        toml::to_string(&self.table).unwrap_or_default()
    }
}

/// Convert a TOML value to JSON (what the library's param structs take).
pub fn toml_to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Integer(i) => serde_json::json!(i),
        Value::Float(f) => serde_json::json!(f),
        Value::Boolean(b) => serde_json::json!(b),
        Value::Datetime(d) => serde_json::Value::String(d.to_string()),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(toml_to_json).collect()),
        Value::Table(t) => serde_json::Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_layers() {
        assert_eq!(parse_value("1e-3"), Value::Float(1e-3));
        assert_eq!(parse_value("3"), Value::Integer(3));
        assert_eq!(parse_value("adam"), Value::String("adam".into()));
        assert_eq!(parse_value("\"x y\""), Value::String("x y".into()));
        assert_eq!(parse_value("true"), Value::Boolean(true));
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.toml");
        let b = dir.path().join("b.toml");
        std::fs::write(&a, "algo = \"sgd\"\nrank = 5\nlr = 0.1\n").unwrap();
        std::fs::write(&b, "rank = 7\n[params]\nreg = 0.5\n").unwrap();
        let c = RawConfig::layered(&[&a, &b], &["lr=0.01".to_string()]).unwrap();
        assert_eq!(c.table["rank"], Value::Integer(7));
        assert_eq!(c.table["lr"], Value::Float(0.01));
        assert_eq!(c.table["reg"], Value::Float(0.5));
        // where each value came from, for error messages
        assert_eq!(c.from("rank"), format!(" (from {})", b.display()));
        assert_eq!(c.from("algo"), format!(" (from {})", a.display()));
        assert_eq!(c.from("lr"), " (from --set)");
        assert_eq!(c.from("seed"), "");
        let located = c.locate(Error::Config("'sgd': setting 'rank' = \"x\": invalid type".into())).to_string();
        assert!(located.ends_with(&format!(" (from {})", b.display())), "{located}");
        let other = c.locate(Error::Config("'sgd': setting 'seed' = 1: bad".into())).to_string();
        assert!(!other.contains("(from"), "{other}");
        std::fs::write(&a, "rank = = 5").unwrap();
        let e = RawConfig::layered(&[&a], &[]).unwrap_err().to_string();
        assert!(e.contains("a.toml:1"), "{e}");
        assert!(RawConfig::layered(&[&b], &["nokey".to_string()]).is_err());
        // a duplicate key: its second line (a span at a line's start is on
        // that line, not the one before), and its name
        std::fs::write(&a, "# comment\nalgo = \"als\"\n\nrank = 10\nrank = 20\n").unwrap();
        let e = RawConfig::layered(&[&a], &[]).unwrap_err().to_string();
        assert!(e.contains("a.toml:5: invalid TOML: duplicate key 'rank'"), "{e}");
        std::fs::write(&a, "[params]\nlr = 1\n[params]\nlr = 2\n").unwrap();
        let e = RawConfig::layered(&[&a], &[]).unwrap_err().to_string();
        assert!(e.contains("a.toml:3:") && e.contains("params"), "{e}");
    }
}
