//! Turns `web/` into the assets the binary serves: every file is named by a hash of its content
//! (`js/app.js` → `/assets/js/app.3f2a9c1b0d.js`), so it can be cached forever and a deploy
//! never mixes old and new code; JavaScript modules' relative imports (`'./cart.js'`) are
//! rewritten to the fingerprinted names first (a module's hash covers the names of what it
//! imports, so a change anywhere renames everything that depends on it); text assets are
//! compressed once here with Brotli (quality 11) and gzip (level 9), so serving never compresses.
//! The output is `$OUT_DIR/assets.rs`, a table of `include_bytes!`.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
};

use sha2::Digest;

/// A source file under `web/`.
struct Source {
    /// Its path under `web/`, with `/` separators (`js/app.js`).
    name: String,
    bytes: Vec<u8>,
}

/// A finished asset.
struct Built {
    name: String,
    url: String,
    bytes: Vec<u8>,
    imports: Vec<String>,
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let web = manifest.join("../../web");
    println!("cargo:rerun-if-changed={}", web.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let mut sources = BTreeMap::new();
    collect(&web, &web, &mut sources);
    let mut built: BTreeMap<String, Built> = BTreeMap::new();
    let names: Vec<String> = sources.keys().cloned().collect();
    for name in &names {
        build(name, &sources, &mut built, &mut Vec::new());
    }
    let files = out.join("assets");
    let _ = fs::remove_dir_all(&files);
    let mut table = String::from("&[\n");
    for asset in built.values() {
        let path = files.join(asset.url.trim_start_matches('/'));
        fs::create_dir_all(path.parent().expect("a parent")).expect("create the output directory");
        fs::write(&path, &asset.bytes).expect("write an asset");
        let content_type = content_type(&asset.name);
        let (brotli, gzip) = if compressible(content_type) {
            (
                precompressed(&path, "br", &brotli(&asset.bytes), asset.bytes.len()),
                precompressed(&path, "gz", &gzip(&asset.bytes), asset.bytes.len()),
            )
        } else {
            (None, None)
        };
        let digest = hex::encode(sha2::Sha256::digest(&asset.bytes));
        let include = |path: Option<PathBuf>| match path {
            Some(path) => format!("Some(include_bytes!({:?}))", path.display().to_string()),
            None => "None".to_owned(),
        };
        let _ = writeln!(
            table,
            "    Asset {{ name: {:?}, url: {:?}, content_type: {:?}, etag: {:?}, imports: &{:?}, \
             identity: include_bytes!({:?}), brotli: {}, gzip: {} }},",
            asset.name,
            asset.url,
            content_type,
            format!("\"{}\"", &digest[..32]),
            asset.imports,
            path.display().to_string(),
            include(brotli),
            include(gzip),
        );
    }
    table.push(']');
    fs::write(out.join("assets.rs"), table).expect("write assets.rs");
}

/// Every servable file under `dir`: documentation and licence notes stay in the repository.
fn collect(root: &Path, dir: &Path, sources: &mut BTreeMap<String, Source>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("read {}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(root, &path, sources);
            continue;
        }
        let file = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or_default();
        if file.ends_with(".md") || file.ends_with(".LICENSE") || file.starts_with('.') {
            continue;
        }
        let name = path
            .strip_prefix(root)
            .expect("under web/")
            .to_string_lossy()
            .replace('\\', "/");
        let bytes = fs::read(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
        sources.insert(name.clone(), Source { name, bytes });
    }
}

/// Builds `name` after the modules it imports (depth first; `stack` catches import cycles).
fn build(
    name: &str,
    sources: &BTreeMap<String, Source>,
    built: &mut BTreeMap<String, Built>,
    stack: &mut Vec<String>,
) {
    if built.contains_key(name) {
        return;
    }
    assert!(
        !stack.iter().any(|seen| seen == name),
        "web/: import cycle through {name}: {stack:?}"
    );
    let source = sources.get(name).unwrap_or_else(|| {
        panic!(
            "web/: {} imports {name}, which does not exist",
            stack.last().map_or("?", |s| s)
        )
    });
    let mut bytes = source.bytes.clone();
    let mut imports = Vec::new();
    if name.ends_with(".js") {
        let text = String::from_utf8(bytes).unwrap_or_else(|_| panic!("web/{name} is not UTF-8"));
        let mut rewritten = String::with_capacity(text.len());
        let mut rest = text.as_str();
        // Relative specifiers in quotes: `'./x.js'`, `"../vendor/y.js"`. Only those: bare and
        // absolute specifiers are not ours to rename.
        while let Some(start) = find_specifier(rest) {
            let quote = rest.as_bytes()[start];
            let after = &rest[start + 1..];
            let Some(end) = after.find(quote as char) else {
                break;
            };
            let specifier = &after[..end];
            let target = resolve(&source.name, specifier);
            stack.push(name.to_owned());
            build(&target, sources, built, stack);
            stack.pop();
            let target_url = &built[&target].url;
            let own_dir = format!("/assets/{}", parent(&source.name));
            let relative = relative_url(&own_dir, target_url);
            // `import('./x.js')` loads on demand: not a dependency to preload.
            let dynamic = rest[..start].trim_end().ends_with("import(");
            rewritten.push_str(&rest[..=start]);
            rewritten.push_str(&relative);
            rewritten.push(quote as char);
            if !dynamic {
                imports.push(target);
            }
            rest = &after[end + 1..];
        }
        rewritten.push_str(rest);
        bytes = rewritten.into_bytes();
    }
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    let (stem, extension) = name.rsplit_once('.').unwrap_or((name, ""));
    let url = format!("/assets/{stem}.{}.{extension}", &digest[..10]);
    built.insert(
        name.to_owned(),
        Built {
            name: name.to_owned(),
            url,
            bytes,
            imports,
        },
    );
}

/// The offset of the opening quote of the next relative module specifier in `text`.
fn find_specifier(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(3)).find(|&at| {
        matches!(bytes[at], b'\'' | b'"')
            && (text[at + 1..].starts_with("./") || text[at + 1..].starts_with("../"))
            && text[at + 1..]
                .split(bytes[at] as char)
                .next()
                .is_some_and(|specifier| {
                    specifier.ends_with(".js") && !specifier.contains(char::is_whitespace)
                })
    })
}

/// `dir` of a `web/` path (`js/app.js` → `js`).
fn parent(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The `web/` path `specifier` names, seen from the file `from`.
fn resolve(from: &str, specifier: &str) -> String {
    let mut parts: Vec<&str> = parent(from).split('/').filter(|part| !part.is_empty()).collect();
    for part in specifier.split('/') {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// `target` (an absolute URL path) relative to the directory `dir`, starting with `./` or `../`.
fn relative_url(dir: &str, target: &str) -> String {
    let from: Vec<&str> = dir.split('/').filter(|part| !part.is_empty()).collect();
    let to: Vec<&str> = target.split('/').filter(|part| !part.is_empty()).collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let ups = from.len() - common;
    let mut relative = if ups == 0 {
        "./".to_owned()
    } else {
        "../".repeat(ups)
    };
    relative.push_str(&to[common..].join("/"));
    relative
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, extension)| extension) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("json" | "webmanifest") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        other => panic!("web/{name}: no content type for extension {other:?}"),
    }
}

fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/") || content_type.contains("json") || content_type.contains("svg")
}

/// Writes `compressed` beside `path` when it saves at least 5 %: a smaller win is not worth a
/// `Vary` lookup.
fn precompressed(path: &Path, suffix: &str, compressed: &[u8], original: usize) -> Option<PathBuf> {
    if compressed.len() * 100 > original * 95 {
        return None;
    }
    let mut target = path.as_os_str().to_owned();
    target.push(format!(".{suffix}"));
    let target = PathBuf::from(target);
    fs::write(&target, compressed).expect("write a compressed asset");
    Some(target)
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut output = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut output, 4096, 11, 22);
        writer.write_all(bytes).expect("brotli");
    }
    output
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}
