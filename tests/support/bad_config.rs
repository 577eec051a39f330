//! Generated bad configuration directories, for the fuzz tests of `check` and of reload: a main
//! file and a few `conf.d` files assembled from table headers, keys (real ones, near misses,
//! absurd ones) and values of every shape (wrong types, huge numbers and durations, control
//! characters, long strings, nested tables, garbage), some secret files pointing at FIFOs,
//! directories, devices and missing paths, and plain garbage lines. Included with
//! `#[path = "support/bad_config.rs"] mod bad_config;`.
#![allow(dead_code)] // each test uses some of these

use proptest::prelude::*;
use std::path::Path;

/// Every key the configuration knows, and two near misses.
fn keys() -> Vec<&'static str> {
    use vast_supervisor::config::parse::{ACCOUNT_KEYS, GLOBAL_KEYS, LOG_RULE_KEYS, TARGET_KEYS};
    [
        GLOBAL_KEYS,
        ACCOUNT_KEYS,
        LOG_RULE_KEYS,
        TARGET_KEYS,
        &["pol_interval", "nmae"],
    ]
    .concat()
}

const HEADERS: &[&str] = &[
    "[[account]]",
    "[[target]]",
    "[[account.log_rule]]",
    "[account]",
    "[target]",
    "[headers]",
    "[x.y.z]",
    "[[account]]\nname = \"a\"\napi_key = \"k\"",
    "[[target]]\nname = \"t\"\nurl = \"console://\"",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => proptest::sample::select(keys()).prop_map(str::to_string),
        1 => "[a-z_]{1,12}",
        1 => (1usize..4).prop_map(|n| "k".repeat(n * 3000)),
        1 => Just("\"quoted key\"".to_string()),
    ]
}

fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("30s".to_string()),
        Just("0s".to_string()),
        Just("99999999999999999999999s".to_string()),
        Just("9999999999999999d".to_string()),
        Just("1.5.3m".to_string()),
        Just("-5s".to_string()),
        "[0-9]{1,30}(ms|s|m|h|d|w|)",
        "[0-9]{1,5}[a-z]{0,3}[0-9]{0,5}",
    ]
}

fn string_value() -> impl Strategy<Value = String> {
    prop_oneof![
        duration_text(),
        "\\PC{0,40}",
        Just("tok\\r\\nX-Evil: 1".to_string()),
        Just("\\u0000\\u0007\\u001b".to_string()),
        Just("discord://1/2?endpoint=http://127.0.0.1:1/relay".to_string()),
        Just("json://[::1:bad/x".to_string()),
        Just("mailtos://u:p@h?to=".to_string()),
        Just("label:*".to_string()),
        Just("127.0.0.1:99999".to_string()),
        Just("((((((".to_string()),
        Just("/dev/zero".to_string()),
        Just("FIFO".to_string()),
        Just("DIR".to_string()),
        Just("/nonexistent/x".to_string()),
        (1usize..3).prop_map(|n| "x".repeat(n * 50_000)),
    ]
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => duration_text().prop_map(|d| format!("\"{d}\"")),
        4 => string_value().prop_map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))),
        1 => string_value().prop_map(|s| format!("'''{}'''", s.replace('\'', ""))),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => Just("18446744073709551615".to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:?}")),
        1 => Just("nan".to_string()),
        1 => Just("inf".to_string()),
        1 => any::<bool>().prop_map(|b| b.to_string()),
        1 => Just("1979-05-27T07:32:00Z".to_string()),
    ]
}

/// Mostly plain values (so the checks behind each key run), sometimes nested arrays and tables.
fn value() -> impl Strategy<Value = String> {
    let nested = leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((key(), inner), 0..3).prop_map(|kv| {
                let fields: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", fields.join(", "))
            }),
        ]
    });
    prop_oneof![6 => leaf(), 1 => nested]
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (key(), value()).prop_map(|(k, v)| format!("{k} = {v}")),
        3 => proptest::sample::select(HEADERS).prop_map(str::to_string),
        1 => "\\PC{0,60}",
        1 => Just("=".to_string()),
        1 => Just("[[".to_string()),
    ]
}

/// Keys of one table, each once (TOML refuses a key twice), with their values.
fn entries() -> impl Strategy<Value = String> {
    prop::collection::btree_map(key(), value(), 0..8).prop_map(|kv| {
        kv.iter()
            .map(|(k, v)| format!("{k} = {v}\n"))
            .collect::<String>()
    })
}

/// A syntactically valid file with wrong content: top-level keys, then tables.
fn toml_file() -> impl Strategy<Value = String> {
    let table = (
        proptest::sample::select(&["[[account]]", "[[target]]", "[[account.log_rule]]"][..]),
        entries(),
    )
        .prop_map(|(header, body)| format!("{header}\n{body}"));
    (entries(), prop::collection::vec(table, 0..5))
        .prop_map(|(top, tables)| format!("{top}\n{}", tables.join("\n")))
}

/// Lines of anything, mostly not valid TOML.
fn line_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(line(), 0..24).prop_map(|lines| lines.join("\n"))
}

/// One file's text: mostly valid TOML with wrong content, sometimes a soup of lines.
pub fn file_text() -> impl Strategy<Value = String> {
    prop_oneof![4 => toml_file(), 1 => line_soup()]
}

/// A configuration directory: the main file (or none), and up to three conf.d files.
#[derive(Debug, Clone)]
pub struct BadConfig {
    pub main: Option<String>,
    pub conf_d: Vec<String>,
}

pub fn bad_config() -> impl Strategy<Value = BadConfig> {
    (
        prop::option::of(file_text()),
        prop::collection::vec(file_text(), 0..4),
    )
        .prop_map(|(main, conf_d)| BadConfig { main, conf_d })
}

/// Writes `config` into `dir` (replacing what an earlier case wrote), with a FIFO and a
/// directory for the values that name them. Secret paths are relative to the file's directory,
/// so "FIFO" and "DIR" point at them.
pub fn write(dir: &Path, config: &BadConfig) {
    write_after(dir, config, "");
}

/// [`write`], with the main file starting with `main_prefix` (a daemon's own globals).
pub fn write_after(dir: &Path, config: &BadConfig, main_prefix: &str) {
    let conf_d = dir.join("conf.d");
    let _ = std::fs::remove_dir_all(&conf_d);
    std::fs::create_dir_all(&conf_d).unwrap();
    let _ = std::fs::remove_file(dir.join("vast-supervisor.toml"));
    for base in [dir, conf_d.as_path()] {
        let fifo = base.join("FIFO");
        if !fifo.exists() {
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a valid NUL-terminated path.
            unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        }
        std::fs::create_dir_all(base.join("DIR")).unwrap();
    }
    if let Some(main) = &config.main {
        std::fs::write(
            dir.join("vast-supervisor.toml"),
            format!("{main_prefix}{main}"),
        )
        .unwrap();
    } else if !main_prefix.is_empty() {
        std::fs::write(dir.join("vast-supervisor.toml"), main_prefix).unwrap();
    }
    for (i, text) in config.conf_d.iter().enumerate() {
        std::fs::write(conf_d.join(format!("{i:02}-fuzz.toml")), text).unwrap();
    }
}
