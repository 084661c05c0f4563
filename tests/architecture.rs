//! The workspace's module graph has no cycles: in every crate, no two modules that are not
//! ancestor and descendant of each other reach one another through `crate::…`, `super::…` or
//! `self::…` paths, directly or around a longer loop. A module may use its ancestors (the
//! crate root's state, a router folder's extractor) and its descendants; siblings must form a
//! DAG, so each can be understood, tested and moved on its own.
//!
//! The graph is read from the sources: each `.rs` file is one module (`lib.rs`/`main.rs` the
//! root, `mod.rs` its folder), and a path names the deepest module that exists under it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path within its crate: `[]` is the root, `["web", "pages"]` is `crate::web::pages`.
type ModPath = Vec<String>;

/// Every module file of the crate whose root file is `root`: module path → file.
fn modules(root: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut out = BTreeMap::new();
    out.insert(vec![], root.to_path_buf());
    let dir = root.parent().unwrap();
    collect(dir, &mut vec![], &mut out, root);
    out
}

fn collect(dir: &Path, prefix: &mut ModPath, out: &mut BTreeMap<ModPath, PathBuf>, root: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p == root {
            continue;
        }
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            prefix.push(name);
            if p.join("mod.rs").exists() {
                out.insert(prefix.clone(), p.join("mod.rs"));
            }
            collect(&p, prefix, out, root);
            prefix.pop();
        } else if p.extension().is_some_and(|x| x == "rs") && name != "mod" && name != "main" && name != "lib" {
            let mut m = prefix.clone();
            m.push(name);
            out.insert(m, p);
        }
    }
}

/// Paths in `text` that start with `crate::`, `super::` or `self::`, as segment lists
/// resolved against the module `here` (a line's text after `//` is ignored, so comments and
/// doc comments do not count).
fn references(text: &str, here: &ModPath) -> Vec<ModPath> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (start, _) in
            code.match_indices("crate::").chain(code.match_indices("super::")).chain(code.match_indices("self::"))
        {
            if start > 0 && code.as_bytes()[start - 1].is_ascii_alphanumeric() {
                continue;
            }
            // `use crate::{a, b::c}` names several paths: expand one level of braces.
            let rest = &code[start..];
            let (head, tail) = rest.split_once("::").unwrap();
            let mut base: ModPath = match head {
                "crate" => vec![],
                "super" => {
                    // `here` is the module itself (a folder's mod.rs is the folder), so `super` is
                    // its parent either way.
                    let mut b = here.clone();
                    b.pop();
                    b
                }
                _ => here.clone(),
            };
            let mut tail = tail;
            while let Some(t) = tail.strip_prefix("super::") {
                base.pop();
                tail = t;
            }
            if let Some(inner) = tail.strip_prefix('{') {
                let inner = inner.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let mut p = base.clone();
                    p.extend(item.trim().split("::").map(ident).filter(|s| !s.is_empty()));
                    out.push(p);
                }
            } else {
                let mut p = base.clone();
                for seg in tail.split("::") {
                    let s = ident(seg);
                    if s.is_empty() {
                        break;
                    }
                    let whole = seg.len() == s.len();
                    p.push(s);
                    if !whole {
                        break;
                    }
                }
                out.push(p);
            }
        }
    }
    out
}

/// The leading identifier of `s`.
fn ident(s: &str) -> String {
    s.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect()
}

fn is_ancestor(a: &ModPath, b: &ModPath) -> bool {
    a.len() <= b.len() && b[..a.len()] == a[..]
}

/// The peer edges of a crate: module → modules it names that are neither its ancestors nor
/// its descendants (attributed to the deepest existing module of each path).
fn edges(root: &Path) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let mods = modules(root);
    let mut out: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (m, file) in &mods {
        let text = std::fs::read_to_string(file).unwrap();
        for r in references(&text, m) {
            let target =
                (0..=r.len()).rev().map(|n| r[..n].to_vec()).find(|p| mods.contains_key(p)).unwrap_or_default();
            if !is_ancestor(m, &target) && !is_ancestor(&target, m) {
                out.entry(m.clone()).or_default().insert(target);
            }
        }
    }
    out
}

/// A cycle in `g`, if there is one, as the modules around it.
fn cycle(g: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Option<Vec<ModPath>> {
    fn visit(
        n: &ModPath,
        g: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        state: &mut BTreeMap<ModPath, u8>,
        stack: &mut Vec<ModPath>,
    ) -> Option<Vec<ModPath>> {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|x| x == m).unwrap();
                    let mut c = stack[from..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

fn name(p: &ModPath) -> String {
    if p.is_empty() {
        "crate".into()
    } else {
        format!("crate::{}", p.join("::"))
    }
}

/// Every crate root in the workspace (`src/lib.rs`, `src/main.rs`).
fn crate_roots() -> Vec<PathBuf> {
    let repo = kippu_e2e::repo();
    let mut roots = Vec::new();
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(repo.join("services")).unwrap().flatten().map(|e| e.path()).collect();
    dirs.push(repo.join("gate-firmware-sim"));
    dirs.sort();
    for d in dirs {
        for f in ["src/lib.rs", "src/main.rs"] {
            if d.join(f).exists() {
                roots.push(d.join(f));
            }
        }
    }
    roots
}

#[test]
fn the_checker_sees_a_cycle_and_ignores_the_hierarchy() {
    let dir = std::env::temp_dir().join(format!("kippu-arch-{}", rand::random::<u32>()));
    std::fs::create_dir_all(dir.join("web")).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod a; mod b; mod web; pub struct State; use crate::a::x;").unwrap();
    std::fs::write(dir.join("a.rs"), "use crate::State; use crate::b::{y, z};").unwrap();
    std::fs::write(dir.join("b.rs"), "pub fn y() { super::a::x() }").unwrap();
    std::fs::write(dir.join("web/mod.rs"), "mod pages; use self::pages::p;").unwrap();
    std::fs::write(dir.join("web/pages.rs"), "use super::Extractor; use crate::State;").unwrap();
    let g = edges(&dir.join("lib.rs"));
    let c = cycle(&g).expect("a ↔ b");
    let names: Vec<String> = c.iter().map(name).collect();
    assert!(names.contains(&"crate::a".to_owned()) && names.contains(&"crate::b".to_owned()), "{names:?}");
    std::fs::write(dir.join("b.rs"), "pub fn y() {} // super::a::x()").unwrap();
    assert_eq!(cycle(&edges(&dir.join("lib.rs"))), None, "parents, children and comments are not cycles");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn no_module_cycles_anywhere_in_the_workspace() {
    let roots = crate_roots();
    assert!(roots.len() > 10, "{roots:?}");
    let mut found = Vec::new();
    for root in roots {
        if let Some(c) = cycle(&edges(&root)) {
            found.push(format!("{}: {}", root.display(), c.iter().map(name).collect::<Vec<_>>().join(" → ")));
        }
    }
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}
