//! The aivm crates keep their layering (ARCHITECTURE.md): the floors depend downward only
//! (tensor ← backend ← model ← vm), and inside each crate the top-level modules import each
//! other without a circle. A circle is a tangle a reader cannot start from; this test names it.
//!
//! Module edges are read from the source (`crate::m`, and `super::m` in a crate's top-level
//! files); test code (from `#[cfg(test)]` on, and files named `tests.rs`) is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FLOORS: [(&str, &str, &[&str]); 5] = [
    // Attestation verification stands apart: it knows nothing of tensors or models.
    ("tee", "aivm-tee", &[]),
    ("tensor", "aivm-tensor", &[]),
    ("backend", "aivm-backend", &["aivm-tensor"]),
    ("model", "aivm-model", &["aivm-tensor", "aivm-backend"]),
    ("vm", "aivm", &["aivm-tensor", "aivm-backend", "aivm-model", "aivm-tee"]),
];

fn aivm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("aivm/").to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The identifiers that follow `prefix` in `src`.
fn after<'a>(src: &'a str, prefix: &str) -> Vec<&'a str> {
    src.match_indices(prefix)
        .filter(|(i, _)| !src[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
        .map(|(i, _)| {
            let rest = &src[i + prefix.len()..];
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// Top-level module of a crate → the top-level modules it imports.
fn module_graph(src_dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src_dir, &mut files);
    let top = |p: &Path| -> Option<String> {
        let rel = p.strip_prefix(src_dir).ok()?;
        let first = rel.components().next()?.as_os_str().to_str()?.trim_end_matches(".rs").to_string();
        (first != "lib" && first != "main").then_some(first)
    };
    let modules: BTreeSet<String> = files.iter().filter_map(|p| top(p)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules.iter().map(|m| (m.clone(), BTreeSet::new())).collect();
    for p in &files {
        let Some(from) = top(p) else { continue };
        if p.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(p).expect("read");
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let code: String = code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
        let mut to: Vec<&str> = after(&code, "crate::");
        let top_level_file = p.parent() == Some(src_dir);
        if top_level_file {
            to.extend(after(&code, "super::"));
        }
        for m in to {
            if m != from && modules.contains(m) {
                graph.get_mut(&from).expect("module").insert(m.to_string());
            }
        }
    }
    graph
}

/// A circle in `graph`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, state: &mut BTreeMap<String, u8>, path: &mut Vec<String>) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|x| x == m).unwrap_or(0);
                    let mut c = path[start..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if state.get(n.as_str()).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn no_module_circle_inside_any_aivm_crate() {
    for (dir, name, _) in FLOORS {
        let graph = module_graph(&aivm_dir().join(dir).join("src"));
        assert!(graph.len() > 1, "{name}: no modules found");
        if let Some(c) = circle(&graph) {
            panic!("{name}: modules import each other in a circle: {}", c.join(" → "));
        }
    }
}

#[test]
fn floors_depend_downward_only() {
    let all: Vec<&str> = FLOORS.iter().map(|f| f.1).collect();
    for (dir, name, allowed) in FLOORS {
        let manifest = std::fs::read_to_string(aivm_dir().join(dir).join("Cargo.toml")).expect("Cargo.toml");
        let deps = manifest.split("[dev-dependencies]").next().unwrap_or("");
        for other in &all {
            let uses = deps.lines().any(|l| l.trim_start().starts_with(&format!("{other}.")) || l.trim_start().starts_with(&format!("{other} ")));
            assert_eq!(uses, allowed.contains(other), "{name} depending on {other}");
        }
    }
}

#[test]
fn the_checker_finds_a_circle() {
    let g: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "c"), ("c", "a")].iter().map(|(x, y)| (x.to_string(), [y.to_string()].into())).collect();
    assert_eq!(circle(&g), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
    let g: BTreeMap<String, BTreeSet<String>> =
        [("a", "b"), ("b", "c")].iter().map(|(x, y)| (x.to_string(), [y.to_string()].into())).chain([("c".to_string(), BTreeSet::new())]).collect();
    assert_eq!(circle(&g), None);
}
