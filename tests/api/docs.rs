//! The documentation says what the code does: every configuration key the
//! parser accepts is in docs/configuration.md and every key documented there
//! is accepted; the environment variables documented are the ones the code
//! reads.

use std::collections::BTreeSet;
use std::path::Path;
use wsticket::config::Settings;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The fields a table accepts, as the parser lists them when it meets an
/// unknown one: "unknown field `zz_probe`, expected one of `a`, `b`" (or
/// "expected `a` or `b`", or "expected `a`").
fn fields_of(probe: &str) -> Vec<String> {
    let no_env = |_: &str| None;
    let e = Settings::from_toml(probe, &no_env).expect_err(probe);
    let msg = e.message;
    let expected = msg
        .split_once("expected ")
        .unwrap_or_else(|| panic!("{probe}: {msg}"))
        .1;
    assert!(msg.contains("unknown field `zz_probe`"), "{probe}: {msg}");
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Every key the parser accepts, in the documentation's dotted form
/// (`store.sentinel.urls`, `clients[].name`).
fn accepted_keys() -> BTreeSet<String> {
    // A table's name (as a prefix), and a TOML text that puts an unknown
    // field into it. Fields that are tables themselves are walked instead
    // of listed.
    let tables: &[(&str, &str)] = &[
        ("", "zz_probe = 1"),
        ("store.", "[store]\nzz_probe = 1"),
        ("store.sentinel.", "[store.sentinel]\nzz_probe = 1"),
        ("tickets.", "[tickets]\nzz_probe = 1"),
        (
            "tickets.secrets[].",
            "[tickets]\nsecrets = [{ zz_probe = 1 }]",
        ),
        ("clients[].", "[[clients]]\nzz_probe = 1"),
        ("auth.", "[auth]\nzz_probe = 1"),
        ("auth.jwt.", "[auth.jwt]\nzz_probe = 1"),
        ("auth.forward.", "[auth.forward]\nzz_probe = 1"),
        ("limits.", "[limits]\nzz_probe = 1"),
        ("events.", "[events]\nzz_probe = 1"),
    ];
    let is_table = |key: &str| {
        tables
            .iter()
            .any(|(prefix, _)| prefix.trim_end_matches('.').trim_end_matches("[]") == key)
    };
    let mut keys = BTreeSet::new();
    for (prefix, probe) in tables {
        for field in fields_of(probe) {
            let key = format!("{prefix}{field}");
            if !is_table(&key) {
                keys.insert(key);
            }
        }
    }
    keys
}

/// The first cell of every table row, when it is one code span.
fn documented(doc: &str) -> BTreeSet<String> {
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |"))
        .map(|(name, _)| name.to_owned())
        .collect()
}

#[test]
fn configuration_md_documents_exactly_the_keys_the_parser_accepts() {
    let documented: BTreeSet<String> = documented(&read("docs/configuration.md"))
        .into_iter()
        .filter(|n| !n.starts_with("WSTICKET_"))
        .collect();
    let accepted = accepted_keys();
    assert!(accepted.len() > 40, "{accepted:?}");
    let undocumented: Vec<_> = accepted.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&accepted).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "accepted but not in docs/configuration.md: {undocumented:?}; \
         documented but not accepted: {unknown:?}"
    );
}

/// `"WSTICKET_…"` string literals in the sources under `dir`.
fn env_vars_read(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            env_vars_read(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split("\"WSTICKET_").skip(1) {
                let name: String = piece
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                if piece[name.len()..].starts_with('"') {
                    out.insert(format!("WSTICKET_{name}"));
                }
            }
        }
    }
}

#[test]
fn configuration_md_documents_exactly_the_environment_variables_read() {
    let documented: BTreeSet<String> = documented(&read("docs/configuration.md"))
        .into_iter()
        .filter(|n| n.starts_with("WSTICKET_"))
        .collect();
    let mut read_by_code = BTreeSet::new();
    env_vars_read(&Path::new(ROOT).join("src"), &mut read_by_code);
    assert!(
        read_by_code.contains("WSTICKET_REDIS_URL"),
        "{read_by_code:?}"
    );
    assert_eq!(documented, read_by_code);
}
