//! The architecture stays legible: the modules of `src/` import each other
//! without cycles, only `routes/` and `startup` know actix-web, and the
//! repository cites nothing outside itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each top-level module of `src/` with the text of its files: code only,
/// without comments and without `#[cfg(test)]` modules (which sit at the
/// end of a file).
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| format!("{l}\n"))
            .collect();
        out.entry(module).or_default().push_str(&code);
    }
    out
}

fn imports(code: &str, modules: &BTreeMap<String, String>) -> BTreeSet<String> {
    code.split("crate::")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            modules.contains_key(&name).then_some(name)
        })
        .collect()
}

#[test]
fn the_modules_of_src_import_each_other_without_a_cycle() {
    let modules = modules();
    assert!(modules.contains_key("core") && modules.contains_key("routes"));
    let graph: BTreeMap<&str, BTreeSet<String>> = modules
        .iter()
        .map(|(m, code)| {
            let mut deps = imports(code, &modules);
            deps.remove(m);
            (m.as_str(), deps)
        })
        .collect();
    // Depth-first search; a module met again while on the path is a cycle.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<&str, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(i) = path.iter().position(|p| *p == m) {
            panic!("import cycle: {} -> {m}", path[i..].join(" -> "));
        }
        if !done.insert(m) {
            return;
        }
        path.push(m);
        for d in &graph[m] {
            visit(d, graph, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
    // The core is below every door.
    assert!(!graph["core"].contains("routes"), "{:?}", graph["core"]);
    assert!(!graph["core"].contains("config"), "{:?}", graph["core"]);
}

/// `code` without its string literals (naively: between double quotes on a
/// line), so that a name in a message does not count as a use.
fn without_strings(code: &str) -> String {
    code.lines()
        .map(|l| l.split('"').step_by(2).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn only_routes_and_startup_know_actix() {
    for (module, code) in modules() {
        let code = without_strings(&code);
        let knows = ["actix_web", "actix_http", "actix_server", "actix_service"]
            .iter()
            .any(|c| code.contains(c));
        let may = matches!(module.as_str(), "routes" | "startup");
        assert!(may || !knows, "src/{module} uses actix");
    }
}

/// Text files of the repository that are ours (not build output).
fn repository_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') && name != ".ci"
            || ["target", "corpus", "node_modules"].contains(&name.as_str())
        {
            continue;
        }
        if path.is_dir() {
            repository_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn the_repository_cites_nothing_outside_itself() {
    let mut files = Vec::new();
    repository_files(Path::new(ROOT), &mut files);
    assert!(files.len() > 50);
    // Built so that this file does not match itself.
    let outside = ["../", "shared/"].concat();
    let spec = ["SP", "EC"].concat();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let cites = line.contains(&outside)
                || line
                    .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .any(|w| w == spec);
            assert!(!cites, "{}:{}: {line}", file.display(), i + 1);
        }
    }
}
