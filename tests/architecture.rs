//! The layering of `src/`: every top-level module has a rank, and a module imports only
//! modules of a lower rank (never one above it, never one beside it), so there is no cycle and
//! no arrow pointing up. Imports are read as the `crate::x` paths of each file, outside
//! `#[cfg(test)]` items and `tests.rs` files (a test may use what it needs).

#![expect(
    clippy::unwrap_used,
    reason = "a failed unwrap is a failed test, with its location"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The ranks, bottom first. A module may import the modules of the ranks before its own.
const RANKS: &[&[&str]] = &[
    // The vocabulary, time, and the leaves that import nothing of the crate.
    &[
        "vocab",
        "clock",
        "untrusted",
        "names",
        "pricing",
        "sse",
        "cluster",
    ],
    // Storage takes prepared rows; telemetry only escapes what it logs.
    &["db", "telemetry"],
    &["secret", "auth", "usage"],
    &["routing", "limits", "translate"],
    &["providers", "settings", "error", "mock"],
    &["config_file", "upstream"],
    // The use cases.
    &["gateway", "admin"],
    &["state"],
    // The edge: only it knows axum.
    &["http"],
    &["app"],
    &["cli"],
];

fn rank(module: &str) -> Option<usize> {
    RANKS.iter().position(|rank| rank.contains(&module))
}

#[test]
fn no_module_imports_one_of_its_own_rank_or_above() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).unwrap();
        let Some(module) = top_module(relative) else {
            continue;
        };
        let Some(own) = rank(&module) else {
            problems.push(format!(
                "src/{}: module `{module}` has no rank in RANKS",
                relative.display()
            ));
            continue;
        };
        let code = without_tests(&code_only(&std::fs::read_to_string(&file).unwrap()));
        for imported in crate_paths(&code) {
            if imported == module {
                continue;
            }
            match rank(&imported) {
                Some(theirs) if theirs < own => {}
                Some(theirs) => problems.push(format!(
                    "src/{} imports crate::{imported} (rank {theirs}), but `{module}` has rank {own}",
                    relative.display()
                )),
                None => problems.push(format!(
                    "src/{} imports crate::{imported}, which has no rank in RANKS",
                    relative.display()
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "imports against the layering:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_reader_skips_comments_strings_and_test_items() {
    let code = r#"
use crate::vocab::Endpoint; // crate::comment
use crate::{names::check_name, pricing};
macro_rules! m { () => { $crate::mock::x } }
/* crate::block */
const S: &str = "crate::string";
const R: &str = r"crate::raw";
const C: char = '{';
fn f<'a>(x: &'a str) -> &'a str { x }
#[cfg(test)]
mod tests {
    use crate::app;
    const X: &str = "}";
}
#[cfg(test)]
#[expect(dead_code, reason = "")]
fn helper() { let _ = crate::cli::run; }
#[cfg(test)]
use crate::state;
pub use crate::db::Db;
"#;
    let seen = crate_paths(&without_tests(&code_only(code)));
    let expected = ["db", "names", "pricing", "vocab"].map(str::to_owned);
    assert_eq!(seen, BTreeSet::from(expected));
}

/// Every `.rs` file under `dir` except `main.rs`, `lib.rs` and `tests.rs` files.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs")
            && !["tests.rs"].contains(&path.file_name().unwrap().to_str().unwrap())
        {
            files.push(path);
        }
    }
    files
}

/// `routing/health.rs` → `routing`; `app.rs` → `app`; the crate roots → `None`.
fn top_module(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!["main", "lib"].contains(&name)).then(|| name.to_owned())
}

/// The source with comments removed and the contents of string and char literals blanked, so
/// that braces and paths inside them are not read as code.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !chars[..i]
                .last()
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            // A raw string: r"…", r#"…"#, and so on.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{1F600}') or a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 2;
                while j < chars.len() && chars[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `code` without the items marked `#[cfg(test)]` (a module, function or `use`).
fn without_tests(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let item = &rest[at + MARK.len()..];
        let bytes = item.as_bytes();
        let mut depth = 0usize;
        let mut end = bytes.len();
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'{' | b'[' | b'(' => depth += 1,
                b'}' | b']' | b')' => {
                    depth = depth.saturating_sub(1);
                    // The item's body closed (`]` only closes a further attribute).
                    if depth == 0 && b == b'}' {
                        end = i + 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The top-level modules named by `crate::x` paths in `code`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    const CRATE: &str = "crate::";
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find(CRATE) {
        let before = rest[..at].chars().last();
        rest = &rest[at + CRATE.len()..];
        // `$crate::` (macros) and `xcrate::` are not paths of this crate.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::B, c}`: the first segment of each path at the group's top level.
            let mut depth = 0usize;
            let mut start = true;
            for (at, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_alphanumeric() || c == '_') => {
                        found.insert(ident(&group[at..]));
                        start = false;
                    }
                    c if !c.is_whitespace() => start = false,
                    _ => {}
                }
            }
            continue;
        }
        let name = ident(rest);
        if !name.is_empty() {
            found.insert(name);
        }
    }
    found
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}
