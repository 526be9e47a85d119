//! Dependencies point inward: reads the `crate::` paths of every source file and checks that
//! the top-level modules form no cycle, that the foundation (`config`, `telemetry`, `http`,
//! `timestamp`, `service_name`) knows nothing of the services, and that the domain model knows
//! nothing of the web layer. A change that breaks one of these fails here, naming the import.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Top-level module -> the top-level modules its files name through `crate::`.
fn module_map() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let modules: BTreeSet<String> = lib
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';').to_owned())
        .collect();
    assert!(modules.contains("users") && modules.contains("http"), "{modules:?}");
    let mut map = BTreeMap::new();
    for module in &modules {
        let mut files = Vec::new();
        let file = src.join(format!("{module}.rs"));
        if file.exists() {
            files.push(file);
        }
        rust_files(&src.join(module), &mut files);
        let used: BTreeSet<String> = files
            .iter()
            .flat_map(|file| crate_paths(&std::fs::read_to_string(file).expect("source file")))
            .filter(|used| modules.contains(used) && used != module)
            .collect();
        map.insert(module.clone(), used);
    }
    map
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The first segment after each `crate::` in `source` (comments skipped), including every
/// item of a grouped `use crate::{a::x, b}`.
fn crate_paths(source: &str) -> Vec<String> {
    let code: String = source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The items at depth 0 of the brace group.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        found.push(ident(&group[i..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.push(ident(rest));
        }
    }
    found
}

/// A cycle through `start`, if any, as a path of module names.
fn cycle_from(map: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        map: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in map.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(map, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(map, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn top_level_modules_form_no_cycle() {
    let map = module_map();
    for module in map.keys() {
        if let Some(cycle) = cycle_from(&map, module) {
            panic!("module cycle: {}\nmodule map: {map:#?}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_foundation_knows_nothing_of_the_services() {
    let map = module_map();
    for lower in ["config", "telemetry", "http", "timestamp", "service_name"] {
        let uses = &map[lower];
        for upper in ["users", "gateway", "startup"] {
            assert!(!uses.contains(upper), "{lower} imports {upper}: {uses:?}");
        }
    }
}

#[test]
fn the_domain_model_knows_nothing_of_the_web_layer() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/users/model.rs");
    let uses = crate_paths(&std::fs::read_to_string(model).expect("src/users/model.rs"));
    for web in ["http", "gateway", "startup", "config"] {
        assert!(
            !uses.iter().any(|used| used == web),
            "users/model.rs imports {web}: {uses:?}"
        );
    }
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/users/model.rs"))
        .expect("model source");
    assert!(!source.contains("axum"), "users/model.rs uses axum");
}

#[test]
fn grouped_imports_are_read_item_by_item() {
    let paths = crate_paths(
        "use crate::{\n    config::X,\n    http::{a, b::{c}},\n    users,\n};\n// crate::gateway\nlet _ = crate::timestamp::format(now);",
    );
    assert_eq!(paths, ["config", "http", "users", "timestamp"]);
}

#[test]
fn the_redis_node_commands_know_nothing_of_the_services_or_the_web_layer() {
    let uses = &module_map()["redis_node"];
    for other in ["users", "gateway", "http", "startup", "telemetry"] {
        assert!(!uses.contains(other), "redis_node imports {other}: {uses:?}");
    }
}
