//! The architecture as a test: each top-level module sits on a layer, and
//! code may use only what lies below its own layer (or inside its own
//! module). A new `use crate::…` that points up fails here, naming the file
//! and the module, before it can close a circle.

use std::path::Path;

/// Bottom to top. Modules on one line are peers that never import each other.
const LAYERS: &[&[&str]] = &[
    &["base"],
    &["model", "tls"],
    &["rules"],
    &["engine"],
    &["error"],
    &["inventory"],
    &["service"],
    &["autoscale"],
    &["http", "front"],
    &["takeover"],
    &["server"],
    &["cli"],
];

/// A file's code up to its inline test module (`#[cfg(test)] mod tests {`);
/// a test module declared in its own file (`mod tests;`) cuts nothing.
fn production(code: &str) -> &str {
    let mut from = 0;
    while let Some(at) = code[from..].find("#[cfg(test)]\nmod ") {
        let at = from + at;
        let line_end = code[at + 13..].find('\n').map_or(code.len(), |e| at + 13 + e);
        if !code[at + 13..line_end].trim_end().ends_with(';') {
            return &code[..at];
        }
        from = line_end;
    }
    code
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The crate modules a file's code (its tests and comments left out) names.
fn modules_used(code: &str) -> Vec<String> {
    let code = production(code);
    let code: String = code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let mut used = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        // `use crate::{a, b}` names several.
        if name.is_empty() && rest.starts_with('{') {
            let inside = &rest[1..rest.find('}').unwrap_or(rest.len())];
            used.extend(inside.split(',').map(|p| p.trim().split("::").next().unwrap_or("").to_owned()));
        } else {
            used.push(name);
        }
    }
    used.retain(|m| !m.is_empty());
    used
}

fn rust_files(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The folder (below the crate) and every Rust file under it.
fn source_files(folder: &str) -> (std::path::PathBuf, Vec<std::path::PathBuf>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    (dir, files)
}

#[test]
fn no_module_imports_one_above_it() {
    let (src, files) = source_files("src");
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let module = relative.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_owned();
        if ["lib", "main"].contains(&module.as_str()) || module.ends_with("_tests") {
            continue;
        }
        let own = layer_of(&module).unwrap_or_else(|| panic!("module {module} has no layer in LAYERS"));
        for used in modules_used(&std::fs::read_to_string(file).unwrap()) {
            let Some(theirs) = layer_of(&used) else { continue };
            if used != module && theirs >= own {
                wrong.push(format!("{} uses crate::{used}", relative.display()));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "imports that point up or across a layer:\n{}", wrong.join("\n"));
}

#[test]
fn the_check_reads_braced_and_plain_paths_and_skips_tests() {
    let code = "//! [`crate::http`]\nuse crate::{base::clock, model};\nuse crate::engine::Op;\n#[cfg(test)]\nmod tests { use crate::cli; }";
    assert_eq!(modules_used(code), ["base", "model", "engine"]);
}

/// The sibling modules (files or folders of one folder, `mod.rs` aside) that
/// a file's code names: `super::x`, `use super::{x, y}`, and
/// `crate::<the folder>::x`.
fn siblings_used(code: &str, folder: &str, siblings: &[String]) -> Vec<String> {
    let own = format!("crate::{}::", folder.replace('/', "::"));
    let mut used: Vec<String> = names_after(production(code), &["super::", own.as_str()])
        .into_iter()
        .filter(|n| siblings.contains(n))
        .collect();
    used.sort();
    used.dedup();
    used
}

/// The names that follow each of `prefixes` in code (comments left out):
/// `prefix::x` gives `x`, `prefix::{x, y::Z}` gives `x` and `y`.
fn names_after(code: &str, prefixes: &[&str]) -> Vec<String> {
    let code: String = code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let mut names = Vec::new();
    for prefix in prefixes {
        for (at, _) in code.match_indices(prefix) {
            let rest = &code[at + prefix.len()..];
            let paths: Vec<&str> = match rest.strip_prefix('{') {
                Some(inside) => inside[..inside.find('}').unwrap_or(inside.len())].split(',').collect(),
                None => vec![rest],
            };
            for path in paths {
                let name: String = path.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    names.push(name);
                }
            }
        }
    }
    names
}

/// A circle in `edges` (module → modules it names), if there is one.
fn a_circle(edges: &std::collections::BTreeMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        at: &str,
        edges: &std::collections::BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == at) {
            let mut circle = path[start..].to_vec();
            circle.push(at.to_owned());
            return Some(circle);
        }
        if !done.insert(at.to_owned()) {
            return None;
        }
        path.push(at.to_owned());
        for next in edges.get(at).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = std::collections::BTreeSet::new();
    edges.keys().find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}

/// Inside every folder too, data flows one way: no file names a sibling that
/// names it back, directly or around a longer circle.
#[test]
fn no_circle_between_the_files_of_any_folder() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The server crate, and the client crate beside it.
    let mut circles = Vec::new();
    for src in [manifest.join("src"), manifest.join("../client/src")] {
        circles.extend(circles_under(&src));
    }
    assert!(circles.is_empty(), "files that name each other:\n{}", circles.join("\n"));
}

/// Every circle between the files of one folder under `src`.
fn circles_under(src: &Path) -> Vec<String> {
    let mut folders = vec![src.to_path_buf()];
    let mut circles = Vec::new();
    while let Some(dir) = folders.pop() {
        let mut modules: Vec<(String, std::path::PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                folders.push(path.clone());
                modules.push((name, path.join("mod.rs")));
            } else if path.extension().is_some_and(|e| e == "rs") && !["mod", "lib", "main"].contains(&name.as_str()) {
                modules.push((name, path));
            }
        }
        modules.retain(|(name, _)| !name.ends_with("tests"));
        let folder = dir.strip_prefix(src).unwrap().to_string_lossy().into_owned();
        let names: Vec<String> = modules.iter().map(|(n, _)| n.clone()).collect();
        let mut edges = std::collections::BTreeMap::new();
        for (name, file) in &modules {
            let code = std::fs::read_to_string(file).unwrap_or_default();
            let used = if folder.is_empty() { modules_used(&code) } else { siblings_used(&code, &folder, &names) };
            edges.insert(name.clone(), used.into_iter().filter(|u| u != name && names.contains(u)).collect());
        }
        if let Some(circle) = a_circle(&edges) {
            circles.push(format!("{}/{}/: {}", src.display(), folder, circle.join(" → ")));
        }
    }
    circles
}

#[test]
fn the_folder_check_reads_super_and_crate_paths_and_finds_circles() {
    let siblings = vec!["a".to_owned(), "b".to_owned(), "c".to_owned()];
    let code = "use super::{a, b::X};\nuse crate::http::api::c::Y;\nuse super::AppState;\n#[cfg(test)]\nmod tests {}";
    assert_eq!(siblings_used(code, "http/api", &siblings), ["a", "b", "c"]);
    let edges = |pairs: &[(&str, &str)]| {
        let mut map = std::collections::BTreeMap::<String, Vec<String>>::new();
        for (from, to) in pairs {
            map.entry((*from).into()).or_default().push((*to).into());
        }
        map
    };
    assert_eq!(a_circle(&edges(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(a_circle(&edges(&[("a", "b"), ("b", "c"), ("c", "a")])).unwrap(), ["a", "b", "c", "a"]);
}

/// The name of the function a line declares with a body (`pub async fn
/// name(`...), or `None`.
fn fn_name(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "fn")?;
    let modifiers = words[..at].iter().all(|w| w.starts_with("pub") || ["async", "const", "unsafe"].contains(w));
    let name: String = words.get(at + 1)?.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
    (modifiers && !line.trim_end().ends_with(';')).then_some(name)
}

/// Functions of production code longer than `most` lines: (file, line, name, length).
fn long_functions(code: &str, most: usize) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = production(code).lines().collect();
    let mut long = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        let Some(name) = fn_name(line) else {
            i += 1;
            continue;
        };
        let open = (i..lines.len()).find(|j| lines[*j].trim_end().ends_with('{')).unwrap_or(i);
        let close = format!("{}}}", " ".repeat(indent));
        let end = (open + 1..lines.len()).find(|j| lines[*j].trim_end() == close).unwrap_or(open);
        if end + 1 - i > most {
            long.push((i + 1, name, end + 1 - i));
        }
        i = end + 1;
    }
    long
}

/// A function a reader cannot hold in their head at once is split into
/// named steps: no production function is over 60 lines.
#[test]
fn no_production_function_is_over_sixty_lines() {
    let (src, files) = source_files("src");
    let mut long = Vec::new();
    for file in files.iter().filter(|f| !f.to_string_lossy().ends_with("tests.rs")) {
        for (line, name, length) in long_functions(&std::fs::read_to_string(file).unwrap(), 60) {
            long.push(format!("{}:{line} {name}: {length} lines", file.strip_prefix(&src).unwrap().display()));
        }
    }
    assert!(long.is_empty(), "functions over 60 lines:\n{}", long.join("\n"));
}

#[test]
fn the_length_check_measures_from_the_signature_to_the_closing_brace() {
    let body = "    x();\n".repeat(3);
    let code = format!("pub async fn short(\n    a: u8,\n) {{\n{body}}}\n\nfn tiny() {{}}\n");
    assert_eq!(long_functions(&code, 7), []);
    assert_eq!(long_functions(&code, 6), [(1, "short".to_owned(), 7)]);
}

/// Methods of each type's own `impl` blocks (trait impls left out) in a
/// file's production code: (type, count).
fn own_methods(code: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = production(code).lines().collect();
    let mut counts = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let inherent = line.starts_with("impl") && !line.contains(" for ") && line.trim_end().ends_with('{');
        if !inherent {
            i += 1;
            continue;
        }
        let head = line.trim_start_matches("impl").trim_end_matches('{').trim();
        // `impl<T> Name<'_, T>`: the name after the generics.
        let head = if head.starts_with('<') { head.split_once("> ").map_or(head, |(_, h)| h) } else { head };
        let name: String = head.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        let end = (i + 1..lines.len()).find(|j| lines[*j].trim_end() == "}").unwrap_or(lines.len());
        let methods = lines[i + 1..end]
            .iter()
            .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
            .filter(|l| fn_name(l).is_some())
            .count();
        counts.push((name, methods));
        i = end + 1;
    }
    counts
}

/// A type a newcomer can hold in their head: the service's facade has at
/// most twenty methods of its own, and no type has more than twenty-five,
/// wherever its `impl` blocks are.
#[test]
fn no_type_has_more_methods_than_a_reader_can_hold() {
    let (_, files) = source_files("src");
    let mut per_type = std::collections::BTreeMap::<String, usize>::new();
    for file in files.iter().filter(|f| !f.to_string_lossy().ends_with("tests.rs") && !test_only(f)) {
        for (name, count) in own_methods(&std::fs::read_to_string(file).unwrap()) {
            *per_type.entry(name).or_default() += count;
        }
    }
    assert!(per_type["Replicator"] <= 20, "Replicator has {} methods of its own", per_type["Replicator"]);
    let large: Vec<String> = per_type.iter().filter(|(_, n)| **n > 25).map(|(t, n)| format!("{t}: {n}")).collect();
    assert!(large.is_empty(), "types with more than 25 methods:\n{}", large.join("\n"));
}

/// Whether the file is a module its parent declares for tests only (a fake).
fn test_only(file: &Path) -> bool {
    let stem = file.file_stem().unwrap().to_string_lossy();
    let dir = file.parent().unwrap();
    let parent = ["mod.rs", "lib.rs"].iter().map(|p| dir.join(p)).find(|p| p.exists() && p != file);
    let declared = parent.map(|p| std::fs::read_to_string(p).unwrap()).unwrap_or_default();
    ["mod", "pub mod", "pub(crate) mod"].iter().any(|m| declared.contains(&format!("#[cfg(test)]\n{m} {stem};")))
}

#[test]
fn the_method_count_reads_inherent_impls_and_skips_trait_impls() {
    let code = "impl<'a> Part<'a> {\n    pub async fn a(&self) {\n        fn inner() {}\n    }\n    fn b() {}\n}\n\
                impl Clone for Part<'_> {\n    fn clone(&self) -> Self { todo!() }\n}\n";
    assert_eq!(own_methods(code), [("Part".to_owned(), 2)]);
}

/// In the service, no child file imports its parent: the parts sit over
/// `core.rs`, and `mod.rs` (the facade) is above them all. A file may name
/// its siblings through `super::`, never an item of `mod.rs`.
#[test]
fn no_file_of_the_service_imports_the_facade() {
    let (_, files) = source_files("src/service");
    let siblings: Vec<String> = files.iter().map(|f| f.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    let mut up = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("mod.rs") && !f.to_string_lossy().ends_with("tests.rs")) {
        let code = std::fs::read_to_string(file).unwrap();
        let code = production(&code);
        let parent_items = parent_items_used(code, &siblings);
        up.extend(parent_items.into_iter().map(|item| format!("{} uses super::{item}", file.display())));
    }
    assert!(up.is_empty(), "files of service/ that import its mod.rs:\n{}", up.join("\n"));
}

/// What `super::` and `crate::service::` name that is not a sibling module.
fn parent_items_used(code: &str, siblings: &[String]) -> Vec<String> {
    names_after(code, &["super::", "crate::service::"]).into_iter().filter(|n| !siblings.contains(n)).collect()
}

#[test]
fn the_facade_check_tells_items_of_the_parent_from_siblings() {
    let siblings = vec!["core".to_owned(), "pool".to_owned()];
    let code = "use super::core::Core;\nuse super::{pool::Pool, Replicator};\nuse crate::service::Settings;";
    assert_eq!(parent_items_used(code, &siblings), ["Replicator", "Settings"]);
}
