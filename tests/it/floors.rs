//! The floor plan in `src/lib.rs` holds: every `crate::` import in `src/`
//! (tests and the binary left out) goes from a module to one on a lower
//! floor, so there are no import circles and no arrow running back up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `floor N: a b c` lines of the plan in the crate docs.
fn plan() -> BTreeMap<String, usize> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).expect("src/lib.rs");
    let mut floors = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.strip_prefix("//! floor ") else {
            continue;
        };
        let (n, modules) = rest.split_once(':').expect("floor N: modules");
        let n: usize = n.trim().parse().expect("a floor number");
        for m in modules.split_whitespace() {
            assert!(floors.insert(m.to_string(), n).is_none(), "{m} twice");
        }
    }
    assert!(!floors.is_empty(), "src/lib.rs has a floor plan");
    floors
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src").flatten() {
        let path = entry.path();
        if path.is_dir() {
            // Test modules may reach anywhere.
            if path.file_name().is_some_and(|n| n == "tests") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules `text` names through `crate::`, grouped imports
/// (`use crate::{a, b::c}`) included.
fn named(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Each item of the group at depth 0.
            let (mut depth, mut start) = (0, 0);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.push(head(&group[start..i]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(head(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.push(head(rest));
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn head(path: &str) -> String {
    path.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[test]
fn every_import_goes_down_the_floor_plan() {
    let floors = plan();
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&root).expect("under src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_string();
        // The binary (main.rs and its cli/ modules) stands on top of the
        // library and reaches it as `vigil::`, not `crate::`.
        if top == "lib" || top == "main" || top == "cli" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read");
        // An inline test module may reach anywhere.
        let code = text
            .find("#[cfg(test)]\nmod tests {")
            .map_or(text.as_str(), |at| &text[..at]);
        let Some(&own) = floors.get(&top) else {
            wrong.push(format!(
                "{}: module `{top}` is not in the floor plan",
                rel.display()
            ));
            continue;
        };
        for m in named(code) {
            if m == top {
                continue;
            }
            match floors.get(&m) {
                Some(&f) if f < own => {}
                Some(&f) => wrong.push(format!(
                    "{}: `{top}` (floor {own}) imports `{m}` (floor {f})",
                    rel.display()
                )),
                None => wrong.push(format!(
                    "{}: imports `{m}`, which is not in the floor plan",
                    rel.display()
                )),
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "the floor plan is broken:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn grouped_imports_are_read() {
    assert_eq!(
        named("use crate::{a::{B, C}, d, e::F};\nlet x = crate::g::h();"),
        ["a", "d", "e", "g"]
    );
}
