//! The README and the pages under `docs/` link to each other by relative
//! paths and heading anchors. A page that moves, or a heading that is
//! renamed, breaks those links silently on GitHub; this test finds them.
//!
//! Every markdown link `[text](target)` outside fenced code blocks and inline
//! code spans, whose target is relative (not `http://`, `https://` or
//! `mailto:`), must name a file that exists, relative to the linking file's
//! folder (a bare `#anchor` is the same file), and its anchor, if any, must
//! be the slug of a heading of that file under GitHub's rules: lowercase,
//! every character but letters, digits, spaces, `-` and `_` removed, spaces
//! as hyphens, and `-1`, `-2`... on repeats.
//!
//! The checker is pure functions over an in-memory set of documents, so the
//! small tests below can prove that it fails on a broken link.

use std::collections::BTreeMap;
use std::path::Path;

/// Markdown documents by path from the repository's root (`/`-separated).
type Docs = BTreeMap<String, String>;

fn repository_root() -> &'static Path {
    // The crate is `crates/replicator`, two folders below the root.
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// README.md and every `*.md` under docs/, recursively.
fn repository_docs() -> Docs {
    fn walk(root: &Path, folder: &str, docs: &mut Docs) {
        let dir = root.join(folder);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
            let name = entry.file_name().to_string_lossy().into_owned();
            let relative = format!("{folder}/{name}");
            if entry.path().is_dir() {
                walk(root, &relative, docs);
            } else if name.ends_with(".md") {
                let text = read(root, &relative);
                docs.insert(relative, text);
            }
        }
    }
    fn read(root: &Path, relative: &str) -> String {
        let path = root.join(relative);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }
    let root = repository_root();
    let mut docs = Docs::new();
    docs.insert("README.md".to_owned(), read(root, "README.md"));
    walk(root, "docs", &mut docs);
    docs
}

/// The text outside fenced code blocks: fence lines and what they enclose
/// become empty lines, so that neither a `# comment` in a shell block reads
/// as a heading nor an example link as a link.
fn prose(doc: &str) -> String {
    let mut fenced = false;
    let mut out = String::with_capacity(doc.len());
    for line in doc.lines() {
        let fence = line.trim_start().starts_with("```");
        if fence {
            fenced = !fenced;
        }
        if !fence && !fenced {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// GitHub's anchor for a heading's text.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|&c| c.is_alphanumeric() || c == ' ' || c == '-' || c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a document's headings, repeats numbered as GitHub does.
fn anchors(doc: &str) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for line in prose(doc).lines() {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) {
            continue;
        }
        let Some(text) = line[hashes..].strip_prefix(' ') else { continue };
        // A closing run of `#` is no part of the heading.
        let base = slug(text.trim_end().trim_end_matches('#'));
        let repeats = seen.entry(base.clone()).or_insert(0);
        out.push(if *repeats == 0 { base } else { format!("{base}-{repeats}") });
        *repeats += 1;
    }
    out
}

/// A markdown link: its text (line breaks as spaces) and its target.
#[derive(Debug, PartialEq)]
struct Link {
    text: String,
    target: String,
}

/// The index just past the code span that opens at `start` (a run of n
/// backticks, closed by the next run of exactly n), or just past the run
/// itself when nothing closes it: then the backticks are plain text.
fn after_code_span(text: &[char], start: usize) -> usize {
    let run = |at: usize| text[at..].iter().take_while(|&&c| c == '`').count();
    let opening = run(start);
    let mut at = start + opening;
    while at < text.len() {
        if text[at] == '`' {
            let closing = run(at);
            if closing == opening {
                return at + closing;
            }
            at += closing;
        } else {
            at += 1;
        }
    }
    start + opening
}

/// The link whose text opens with the `[` at `open`, and the index past it;
/// `None` when that bracket opens no `[text](target)`. The text may hold code
/// spans and balanced brackets.
fn link_at(text: &[char], open: usize) -> Option<(Link, usize)> {
    let mut depth = 0;
    let mut at = open;
    let close = loop {
        match text.get(at)? {
            '`' => {
                at = after_code_span(text, at);
                continue;
            }
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    break at;
                }
            }
            _ => {}
        }
        at += 1;
    };
    if text.get(close + 1) != Some(&'(') {
        return None;
    }
    let start = close + 2;
    let end = start + text[start..].iter().position(|&c| c == ')' || c.is_whitespace())?;
    if text[end] != ')' {
        return None;
    }
    let label: String = text[open + 1..close].iter().collect();
    let link = Link {
        text: label.split_whitespace().collect::<Vec<_>>().join(" "),
        target: text[start..end].iter().collect(),
    };
    Some((link, end + 1))
}

/// Every link of a document outside fenced blocks and code spans, images
/// included (their target must exist too).
fn links(doc: &str) -> Vec<Link> {
    let text: Vec<char> = prose(doc).chars().collect();
    let mut found = Vec::new();
    let mut at = 0;
    while at < text.len() {
        match text[at] {
            '`' => at = after_code_span(&text, at),
            '[' => match link_at(&text, at) {
                Some((link, next)) => {
                    found.push(link);
                    at = next;
                }
                // `[min, max]` and the like: look inside it for links.
                None => at += 1,
            },
            _ => at += 1,
        }
    }
    found
}

/// `target` (a relative path) seen from the file `from`, as a path from the
/// repository's root; `None` when it climbs above the root.
fn resolve(from: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            _ => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// Every broken relative link of `docs`, as `file: [text](target)`. `exists`
/// answers for files that are not among `docs` (images, source files); an
/// anchor into such a file cannot be checked, so it counts as broken.
fn broken(docs: &Docs, exists: impl Fn(&str) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    for (file, doc) in docs {
        for link in links(doc) {
            if ["http://", "https://", "mailto:"].iter().any(|scheme| link.target.starts_with(scheme)) {
                continue;
            }
            let (path, anchor) = link.target.split_once('#').unwrap_or((link.target.as_str(), ""));
            let resolved = if path.is_empty() { Some(file.clone()) } else { resolve(file, path) };
            let fine = match resolved {
                None => false,
                Some(target) => match docs.get(&target) {
                    Some(target_doc) => anchor.is_empty() || anchors(target_doc).iter().any(|a| a == anchor),
                    None => anchor.is_empty() && exists(&target),
                },
            };
            if !fine {
                out.push(format!("{file}: [{}]({})", link.text, link.target));
            }
        }
    }
    out
}

#[test]
fn every_relative_link_of_the_readme_and_docs_resolves() {
    let docs = repository_docs();
    assert!(docs.contains_key("docs/reference.md"), "docs/ was not read: {:?}", docs.keys());
    let root = repository_root();
    let problems = broken(&docs, |path| root.join(path).exists());
    assert!(problems.is_empty(), "broken links:\n  - {}", problems.join("\n  - "));
}

#[test]
fn slugs_follow_githubs_rules() {
    assert_eq!(slug("The whole system: `scripts/demo`"), "the-whole-system-scriptsdemo");
    assert_eq!(slug("Progress while `--wait` waits"), "progress-while---wait-waits");
    assert_eq!(slug("Identities: who may do what"), "identities-who-may-do-what");
    assert_eq!(slug("Warm standbys: time to serve (×0.01)"), "warm-standbys-time-to-serve-001");
    assert_eq!(slug("API → service_layer"), "api--service_layer");
    let doc = "# Setup\n```sh\n# not a heading\n```\n## Setup\n### Setup ##\n";
    assert_eq!(anchors(doc), ["setup", "setup-1", "setup-2"]);
}

#[test]
fn a_broken_anchor_or_file_is_reported() {
    let docs = Docs::from([
        (
            "README.md".to_owned(),
            "# Title\n\nSee [the\nsetup](docs/guide.md#set-up), [`code` here](docs/gone.md) and [ok](docs/guide.md).\n"
                .to_owned(),
        ),
        ("docs/guide.md".to_owned(), "# Guide\n\n## Setup\n".to_owned()),
    ]);
    assert_eq!(
        broken(&docs, |_| false),
        ["README.md: [the setup](docs/guide.md#set-up)", "README.md: [`code` here](docs/gone.md)"]
    );
}

#[test]
fn correct_links_pass_and_code_is_not_read() {
    let docs = Docs::from([
        (
            "README.md".to_owned(),
            concat!(
                "# Title\n\n## Two words: `x`\n\n",
                "[Setup](docs/guide/setup.md#setup-1), [here](#two-words-x), [web](https://example.org/#x),\n",
                "![a picture](docs/shot.png), [min, max] and `[code](nowhere.md)`.\n",
                "```md\n[fenced](nowhere.md)\n```\n",
            )
            .to_owned(),
        ),
        (
            "docs/guide/setup.md".to_owned(),
            "# Setup\n\n## Setup\n\nBack to [the top](../../README.md#title).\n".to_owned(),
        ),
    ]);
    assert_eq!(broken(&docs, |path| path == "docs/shot.png"), Vec::<String>::new());
}

/// The README stays a front page, and it and the book's summary link every
/// page of the guide.
#[test]
fn the_readme_is_short_and_it_and_the_summary_link_every_guide_page() {
    let root = repository_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.lines().count() <= 300, "README.md has {} lines: at most 300", readme.lines().count());
    let summary = std::fs::read_to_string(root.join("docs/SUMMARY.md")).unwrap();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root.join("docs/guide")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if !name.ends_with(".md") {
            continue;
        }
        if !readme.contains(&format!("docs/guide/{name}")) {
            missing.push(format!("README.md does not link {name}"));
        }
        if !summary.contains(&format!("guide/{name}")) {
            missing.push(format!("docs/SUMMARY.md does not link {name}"));
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

/// The demo app is a user of the client crate, as users' programs are, and
/// not of the server.
#[test]
fn the_demo_depends_on_the_client_crate_and_not_on_the_server() {
    let manifest = std::fs::read_to_string(repository_root().join("crates/demo/Cargo.toml")).unwrap();
    let section = manifest.split("[dependencies]").nth(1).unwrap_or_default();
    let dependencies: Vec<&str> = section.split("\n[").next().unwrap_or_default().lines().map(str::trim).collect();
    let named = |crate_name: &str| dependencies.iter().any(|l| l.split(['.', '=', ' ']).next() == Some(crate_name));
    assert!(named("replicator-client"), "{dependencies:?}");
    assert!(!named("replicator"), "the demo names the server crate: {dependencies:?}");
}
