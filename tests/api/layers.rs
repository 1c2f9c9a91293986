//! The server's modules form layers: the crate docs' `# Layout` lists them bottom up, one line
//! each (`N. [`name`]: …`), and every module may use only those listed before it. This reads
//! the sources the way a reader would (every `crate::NAME` path, tests included, comments
//! not) and fails on any use of a module at the same level or above, so a loop can never come
//! back unnoticed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The layer order the crate docs declare, bottom first.
fn declared_layers(lib: &str) -> Vec<String> {
    let section = lib
        .split("//! # Layout")
        .nth(1)
        .expect("src/lib.rs has a `# Layout` section");
    section
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with("//!"))
        .filter_map(|line| {
            let text = line.trim_start_matches("//!").trim_start();
            let (number, rest) = text.split_once(". [`")?;
            number.parse::<u32>().ok()?;
            rest.split_once("`]").map(|(name, _)| name.to_string())
        })
        .collect()
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The top-level modules `text` names through `crate::`, comments left out; `use
/// crate::{a, b::c}` groups count each name.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let before = code[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '$')) {
            continue; // `$crate::` or part of a longer path
        }
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The group's items at its own depth: `{a::{b, c}, d}` names `a` and `d`.
            let (mut depth, mut item_start) = (0, true);
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        names.insert(ident(&group[j..]));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            names.insert(ident(rest));
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

/// Which modules each top-level module uses, with one file as the example.
fn module_uses() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut files = Vec::new();
    sources(Path::new(SRC), &mut files);
    let mut uses: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(SRC).expect("under src");
        let top = relative
            .components()
            .next()
            .expect("a path")
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("readable source");
        let entry = uses.entry(top.clone()).or_default();
        for used in crate_paths(&text) {
            if used != top {
                entry
                    .entry(used)
                    .or_insert_with(|| relative.display().to_string());
            }
        }
    }
    uses
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let lib = std::fs::read_to_string(format!("{SRC}/lib.rs")).expect("src/lib.rs");
    let layers = declared_layers(&lib);
    assert!(layers.len() > 5, "the layout lists the layers: {layers:?}");
    let uses = module_uses();
    let level = |name: &str| layers.iter().position(|l| l == name);
    let mut wrong = Vec::new();
    for (module, used) in &uses {
        let Some(here) = level(module) else {
            wrong.push(format!(
                "{module} is not listed in the layout of src/lib.rs"
            ));
            continue;
        };
        for (other, file) in used {
            match level(other) {
                Some(there) if there < here => {}
                Some(_) => wrong.push(format!(
                    "{module} uses {other}, which is not below it ({file})"
                )),
                None => wrong.push(format!("{module} uses {other}, not a layer ({file})")),
            }
        }
    }
    for layer in &layers {
        if !uses.contains_key(layer) {
            wrong.push(format!("the layout lists {layer}, which is not a module"));
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_grouped_paths_and_skips_comments() {
    let text = "use crate::{store::{X, Y}, relay};\n// crate::http is only mentioned\nlet _ = crate::cdc::y; $crate::z";
    let names: Vec<String> = crate_paths(text).into_iter().collect();
    assert_eq!(names, ["cdc", "relay", "store"]);
    let lib = "//! # Layout\n//!\n//! 1. [`domain`]: pure\n//! 2. [`store`]: below\n\nmod x;";
    assert_eq!(declared_layers(lib), ["domain", "store"]);
}
