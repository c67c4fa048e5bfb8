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
    &["server"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The crate modules a file's code (its tests and comments left out) names.
fn modules_used(code: &str) -> Vec<String> {
    let code = code.split("#[cfg(test)]\nmod ").next().unwrap_or(code);
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

#[test]
fn no_module_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
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
