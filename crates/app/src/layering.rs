//! The layering rule of `docs/architecture.md` ("Layers and dependencies"), checked on the
//! source so that it cannot erode one convenient import at a time:
//!
//! - nothing outside `http` imports `crate::http` except the entry points `server` (which
//!   serves the router) and `fuzzing` (which hands the HTTP parsers to the fuzz targets):
//!   `jobs`, `cli`, `links`, `store`, `db` and the rest reach shared names (storage keys, cache
//!   names, request ids) in leaf modules instead;
//! - no import cycles between modules, in any crate of the workspace, at any depth (a module
//!   and its own submodules excepted: a parent re-exports its children and they use its items).
//!
//! The scan reads `use` trees and every `crate::`/`super::`/`self::` path, after removing
//! comments and string literals; it resolves each path to the longest module it names.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// A module's path below its crate root (`["http", "users"]`); the root is `[]`.
type ModulePath = Vec<String>;

/// The modules of one crate and the modules each one imports.
#[derive(Debug, Default)]
struct Imports {
    edges: BTreeMap<ModulePath, BTreeSet<ModulePath>>,
}

fn crate_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// `src/http/users.rs` → `["http", "users"]`; `mod.rs` and `lib.rs` name their directory.
fn module_of(root: &Path, file: &Path) -> ModulePath {
    let relative = file
        .strip_prefix(root)
        .expect("below the root")
        .with_extension("");
    let mut parts: ModulePath = relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|last| last == "mod" || last == "lib") {
        parts.pop();
    }
    parts
}

/// The source without comments, string literals and char literals (their contents become
/// spaces), so that only code is scanned.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let ident = |c: char| c.is_alphanumeric() || c == '_';
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
            && (i == 0 || !ident(chars[i - 1]) || chars[i - 1] == 'b' && (i < 2 || !ident(chars[i - 2])))
            && matches!(next, Some('"') | Some('#'))
        {
            // A raw string: r"…", r#"…"#, br"…".
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
                if chars[j] == '"' && (1..=hashes).all(|k| chars.get(j + k) == Some(&'#')) {
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
            // A char literal ('x', '\n', '\u{1F600}'), or a lifetime ('a), kept as is.
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

/// The tokens that matter for paths: identifiers (`$crate` counts as `crate`) and punctuation.
fn tokens(code: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphabetic() || c == '_' || (c == '$' && chars.get(i + 1) == Some(&'c')) {
            let start = if c == '$' { i + 1 } else { i };
            i = start;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push("::".to_owned());
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            tokens.push(c.to_string());
            i += 1;
        }
    }
    tokens
}

/// Expands a `use` tree (`crate::{db::Database, http::{self, error::ApiError}}`) into paths.
fn expand_use(tokens: &[String], prefix: &[String], paths: &mut Vec<Vec<String>>) {
    let mut path = prefix.to_vec();
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "::" => i += 1,
            "{" => {
                // Split the group on its top-level commas.
                let mut depth = 0;
                let mut start = i + 1;
                for j in i..tokens.len() {
                    match tokens[j].as_str() {
                        "{" => depth += 1,
                        "}" => {
                            depth -= 1;
                            if depth == 0 {
                                expand_use(&tokens[start..j], &path, paths);
                                return;
                            }
                        }
                        "," if depth == 1 => {
                            expand_use(&tokens[start..j], &path, paths);
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
                return;
            }
            "as" | "*" => break,
            "self" if !path.is_empty() => i += 1,
            segment => {
                path.push(segment.to_owned());
                i += 1;
            }
        }
    }
    if !path.is_empty() {
        paths.push(path);
    }
}

/// Resolves `path`, used in module `at`, to the longest known module it names, if any.
fn resolve(at: &[String], path: &[String], known: &BTreeSet<ModulePath>) -> Option<ModulePath> {
    let first = path.first()?;
    let mut base: ModulePath = at.to_vec();
    let mut rest = path;
    match first.as_str() {
        "crate" => {
            base.clear();
            rest = &path[1..];
        }
        "super" | "self" => {
            while let Some(segment) = rest.first() {
                match segment.as_str() {
                    "super" => {
                        base.pop()?;
                    }
                    "self" => {}
                    _ => break,
                }
                rest = &rest[1..];
            }
        }
        // A bare path names a submodule of the current module, or something outside the crate.
        _ => {}
    }
    let bare = !matches!(first.as_str(), "crate" | "super" | "self");
    let shortest = base.len() + usize::from(bare);
    let mut full = base;
    full.extend(rest.iter().cloned());
    (shortest..=full.len())
        .rev()
        .map(|length| full[..length].to_vec())
        .find(|candidate| known.contains(candidate))
}

/// The modules that `source`, the file of `module`, imports (itself excluded).
fn imports_in(module: &[String], source: &str, known: &BTreeSet<ModulePath>) -> BTreeSet<ModulePath> {
    let tokens = tokens(&code_only(source));
    let mut targets = BTreeSet::new();
    // Inline modules (`mod tests { … }`) shift what `super` and `self` mean.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let mut at = module.to_vec();
        at.extend(inline.iter().map(|(name, _)| name.clone()));
        match tokens[i].as_str() {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, opened)| *opened == depth) {
                    inline.pop();
                }
            }
            "mod" if tokens.get(i + 2).is_some_and(|token| token == "{") => {
                inline.push((tokens[i + 1].clone(), depth));
                depth += 1;
                i += 3;
                continue;
            }
            "use" => {
                let end = (i..tokens.len())
                    .find(|&j| tokens[j] == ";")
                    .unwrap_or(tokens.len());
                let mut paths = Vec::new();
                expand_use(&tokens[i + 1..end], &[], &mut paths);
                targets.extend(paths.iter().filter_map(|path| resolve(&at, path, known)));
                i = end;
                continue;
            }
            first
                if tokens.get(i + 1).is_some_and(|token| token == "::")
                    && (i == 0 || tokens[i - 1] != "::") =>
            {
                let mut path = vec![first.to_owned()];
                let mut j = i + 1;
                while tokens.get(j).is_some_and(|token| token == "::")
                    && tokens
                        .get(j + 1)
                        .is_some_and(|token| token.starts_with(|c: char| c.is_alphabetic() || c == '_'))
                {
                    path.push(tokens[j + 1].clone());
                    j += 2;
                }
                targets.extend(resolve(&at, &path, known));
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    targets.remove(module);
    targets
}

fn scan(crate_name: &str) -> Imports {
    let root = crate_dir(crate_name);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    // The binary's root is a crate of its own: it reaches the library as `outgrow::…`.
    files.retain(|file| file.file_name().is_none_or(|name| name != "main.rs"));
    let modules: BTreeMap<ModulePath, PathBuf> = files
        .into_iter()
        .map(|file| (module_of(&root, &file), file))
        .collect();
    let known: BTreeSet<ModulePath> = modules.keys().cloned().collect();
    let mut imports = Imports::default();
    for (module, file) in &modules {
        let source = std::fs::read_to_string(file).expect("readable source");
        imports
            .edges
            .insert(module.clone(), imports_in(module, &source, &known));
    }
    imports
}

fn related(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

/// One import cycle among `edges` (as the modules along it), if there is one.
fn find_cycle(edges: &BTreeMap<ModulePath, BTreeSet<ModulePath>>) -> Option<Vec<ModulePath>> {
    fn visit(
        node: &ModulePath,
        edges: &BTreeMap<ModulePath, BTreeSet<ModulePath>>,
        done: &mut BTreeSet<ModulePath>,
        stack: &mut Vec<ModulePath>,
    ) -> Option<Vec<ModulePath>> {
        if let Some(start) = stack.iter().position(|on| on == node) {
            let mut cycle = stack[start..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut done, &mut Vec::new()))
}

/// The import graph with every module cut to its first `depth` segments, without the edges
/// between a module and its own ancestors or descendants.
fn at_depth(imports: &Imports, depth: usize) -> BTreeMap<ModulePath, BTreeSet<ModulePath>> {
    let cut = |module: &ModulePath| module[..module.len().min(depth)].to_vec();
    let mut edges: BTreeMap<ModulePath, BTreeSet<ModulePath>> = BTreeMap::new();
    for (from, targets) in &imports.edges {
        for to in targets {
            if related(from, to) || related(&cut(from), &cut(to)) {
                continue;
            }
            edges.entry(cut(from)).or_default().insert(cut(to));
        }
    }
    edges
}

#[test]
fn nothing_below_the_http_layer_imports_it() {
    let imports = scan("app");
    let http = vec!["http".to_owned()];
    // The entry points: the server mounts the router, the fuzz harness calls its parsers.
    let allowed = [vec!["server".to_owned()], vec!["fuzzing".to_owned()]];
    let offenders: Vec<String> = imports
        .edges
        .iter()
        .filter(|(from, _)| !from.starts_with(&http) && !allowed.contains(from))
        .flat_map(|(from, targets)| {
            targets
                .iter()
                .filter(|to| to.starts_with(&http))
                .map(move |to| format!("{} imports {}", name(from), name(to)))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "lower layers reach up into `http` (move the shared item to a leaf module): {offenders:#?}"
    );
}

#[test]
fn no_module_imports_another_that_imports_it_back() {
    for crate_name in ["app", "platform", "domain"] {
        let imports = scan(crate_name);
        let deepest = imports.edges.keys().map(Vec::len).max().unwrap_or(0);
        for depth in 1..=deepest {
            if let Some(cycle) = find_cycle(&at_depth(&imports, depth)) {
                let path: Vec<String> = cycle.iter().map(|module| name(module)).collect();
                panic!("an import cycle in {crate_name}: {}", path.join(" → "));
            }
        }
    }
}

#[test]
fn the_scan_sees_imports_in_every_form_it_must_catch() {
    // The checks above are only as good as the scanner: it must see nested `use` trees, inline
    // and `super` paths (inline modules included), and nothing in comments or strings.
    let module = |path: &str| -> ModulePath { path.split("::").map(str::to_owned).collect() };
    let known: BTreeSet<ModulePath> = [
        "cli",
        "http",
        "http::error",
        "jobs",
        "links",
        "store",
        "store::orders",
    ]
    .into_iter()
    .map(module)
    .collect();
    let source = r##"
        // use crate::cli; (a comment)
        /* crate::cli::run() */
        const TEXT: &str = "crate::cli::run";
        const RAW: &str = r#"crate::cli"#;
        use crate::{store::orders, http::{self, error::ApiError}};
        fn f<'a>(x: &'a str) -> char { super::super::jobs::run(x); '"' }
        mod tests {
            use super::super::super::links;
        }
    "##;
    let found: Vec<String> = imports_in(&module("store::orders"), source, &known)
        .iter()
        .map(|found| name(found))
        .collect();
    assert_eq!(found, ["http", "http::error", "jobs", "links"]);
}
