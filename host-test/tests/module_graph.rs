//! The module graph of the component and of the host crates, read from their
//! source: no import circles, and no arrow back up (a module never uses its
//! own ancestor, whose file declares it). Test code is left out.
//!
//! An edge `a → b` is any path `crate::…`, `super::…` or `self::…` in `a`'s
//! code (in `use` lines or inline) that names the module `b` (resolved as far
//! as its segments name modules of files). Run alone with
//! `cargo test -p host-test --test module_graph`; a failure prints the circle
//! or the edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The crates whose graphs are checked: the component and the host crates.
const CRATES: [&str; 4] = [
    "src",
    "crates/host-drafts/src",
    "crates/gateway/src",
    "crates/simulator/src",
];

/// Module path (`core::login`; the crate root is `""`) → its file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                let mut inner = prefix.to_vec();
                inner.push(name);
                walk(&path, &inner, out);
                continue;
            }
            if path.extension().is_none_or(|ext| ext != "rs") {
                continue;
            }
            let mut module = prefix.to_vec();
            match name.as_str() {
                // Binaries are crates of their own; `tests.rs` is test code.
                "main" | "tests" => continue,
                "lib" | "mod" => {}
                _ => module.push(name),
            }
            out.insert(module.join("::"), path);
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &[], &mut out);
    out
}

/// The code of a file without comments and without `#[cfg(test)]` items.
fn non_test_code(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") || trimmed.starts_with("#[cfg(any(test") {
            // Skip the item it marks: one line, or a block to its closing brace.
            let mut depth = 0i32;
            for item in lines.by_ref() {
                depth += item.matches('{').count() as i32 - item.matches('}').count() as i32;
                let item = item.trim();
                if depth <= 0 && (item.ends_with(';') || item.ends_with('}')) {
                    break;
                }
            }
            continue;
        }
        code.push_str(line.split(" //").next().unwrap_or(line));
        code.push('\n');
    }
    code
}

/// Every module the code of `module` names, resolved against `known`.
fn uses(module: &str, code: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // `use a::{b, c::d}` names a::b and a::c::d: expand braces into paths.
    let mut paths = Vec::new();
    for statement in code.split(';') {
        let statement = statement.trim();
        if let Some(tree) = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
            .or_else(|| statement.strip_prefix("use "))
        {
            expand(&tree.split_whitespace().collect::<String>(), "", &mut paths);
        }
    }
    // Inline paths: `crate::x::y(`, `super::z::W`.
    for (at, _) in code.match_indices("::") {
        let start = code[..at]
            .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(0, |i| i + 1);
        let end = code[at..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(code.len(), |i| at + i);
        paths.push(code[start..end].to_owned());
    }
    for path in paths {
        let mut segments = path.split("::").filter(|s| !s.is_empty());
        let mut at: Vec<&str> = match segments.next() {
            Some("crate") => Vec::new(),
            Some("self") => module.split("::").filter(|s| !s.is_empty()).collect(),
            Some("super") => {
                let mut parent: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
                parent.pop();
                parent
            }
            _ => continue,
        };
        for segment in segments {
            if segment == "super" {
                at.pop();
                continue;
            }
            let mut next = at.clone();
            next.push(segment);
            if known.contains_key(&next.join("::")) {
                at = next;
            } else {
                break;
            }
        }
        let target = at.join("::");
        if target != module {
            found.insert(target);
        }
    }
    found
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str, prefix: &str, out: &mut Vec<String>) {
    match tree.find('{') {
        None => out.push(format!("{prefix}{tree}")),
        Some(open) => {
            let head = &tree[..open];
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&inner[start..i], &format!("{prefix}{head}"), out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&inner[start..], &format!("{prefix}{head}"), out);
        }
    }
}

fn is_ancestor(ancestor: &str, module: &str) -> bool {
    ancestor.is_empty() || module.starts_with(&format!("{ancestor}::"))
}

/// A circle through `start`, if there is one.
fn circle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    at: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in graph.get(at).into_iter().flatten() {
        if next == start {
            let mut found = path.clone();
            found.push(start.to_owned());
            return Some(found);
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if let Some(found) = circle(graph, start, next, path, seen) {
                return Some(found);
            }
            path.pop();
        }
    }
    None
}

fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let known = modules(src);
    known
        .iter()
        .map(|(module, file)| {
            let code = non_test_code(&std::fs::read_to_string(file).unwrap());
            (module.clone(), uses(module, &code, &known))
        })
        .collect()
}

#[test]
fn no_module_uses_its_ancestor_and_no_modules_form_a_circle() {
    let mut problems = Vec::new();
    for krate in CRATES {
        let graph = graph(&Path::new(ROOT).join(krate));
        assert!(graph.len() > 1, "{krate}: no modules found");
        for (module, uses) in &graph {
            for used in uses.iter().filter(|used| is_ancestor(used, module)) {
                problems.push(format!("{krate}: {module} uses its ancestor `{used}`"));
            }
            let mut path = vec![module.clone()];
            if let Some(found) = circle(&graph, module, module, &mut path, &mut BTreeSet::new()) {
                problems.push(format!("{krate}: circle {}", found.join(" → ")));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_reader_sees_edges_circles_and_arrows_up() {
    let known: BTreeMap<String, PathBuf> = ["", "a", "a::b", "c"]
        .into_iter()
        .map(|m| (m.to_owned(), PathBuf::new()))
        .collect();
    let code = non_test_code(
        "use super::{b::X, Y};\nfn f() { crate::c::g(); }\n#[cfg(test)]\nmod tests {\n    use crate::a::b;\n}\n",
    );
    assert_eq!(
        uses("a::b", &code, &known),
        BTreeSet::from(["a".to_owned(), "c".to_owned()])
    );
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", BTreeSet::from(["c".to_owned()])),
        ("c", BTreeSet::from(["a".to_owned()])),
    ]
    .into_iter()
    .map(|(m, u)| (m.to_owned(), u))
    .collect();
    let found = circle(
        &graph,
        "a",
        "a",
        &mut vec!["a".into()],
        &mut BTreeSet::new(),
    );
    assert_eq!(found, Some(vec!["a".into(), "c".into(), "a".into()]));
    assert!(is_ancestor("a", "a::b") && is_ancestor("", "c") && !is_ancestor("a", "ab"));
}
