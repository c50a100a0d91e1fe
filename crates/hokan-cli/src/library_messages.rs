//! No library message names a `hokan` command or flag: the libraries are
//! for any Rust program, which has no `hokan check --read-data` to run, and
//! the CLI adds its commands as hints (`cmd::hint`, keyed by the error).
//!
//! This scans the string literals of the library crates' sources rather
//! than testing constructed error values: most advice is written where an
//! error is made (`reason: format!(…)`, a warning's text), not in the
//! `Display` templates a test could construct, and a scan also sees the
//! strings added after this test was written. What counts as CLI syntax
//! comes from the CLI's own clap definitions, so a new command or flag is
//! covered without touching this file.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

/// The library crates, whose messages must name no CLI command.
const LIBRARIES: &[&str] = &[
    "hokan-core",
    "hokan-repo",
    "hokan-etcd",
    "hokan-k8s",
    "hokan-k8s-codec",
    "hokan-mount",
];

/// Sources that are not the product: test support (servers, fixtures,
/// fault injection), whose strings are command lines of etcd and etcdctl.
const TEST_SUPPORT: &[&str] = &[
    "hokan-repo/src/conformance.rs",
    "hokan-repo/src/faults.rs",
    "hokan-repo/src/fault_model.rs",
    "hokan-repo/src/fault_model/",
    "hokan-etcd/src/testing.rs",
    "hokan-etcd/src/testdata.rs",
    "hokan-k8s/src/testserver/",
];

/// Literals that are data, not messages: a resource snapshot records the
/// filters it was taken with, as the flags that repeat them (the
/// `k8s.filters` label stored in existing snapshots).
const DATA: &[(&str, &str)] = &[
    ("hokan-k8s/src/repository/mod.rs", "--{flag} {}"),
    ("hokan-k8s/src/repository/mod.rs", "--selector {s}"),
    (
        "hokan-k8s/src/repository/mod.rs",
        "--include-cluster-resources true",
    ),
    (
        "hokan-k8s/src/repository/mod.rs",
        "--include-cluster-resources false",
    ),
    ("hokan-k8s/src/repository/mod.rs", "--all-api-versions"),
    ("hokan-k8s/src/repository/mod.rs", "--exclude-operators"),
];

/// Other tools, whose commands and flags a message may name: the person
/// running them is the embedder's operator as much as the CLI's user.
const OTHER_TOOLS: &[&str] = &[
    "kubectl", "etcdctl", "etcd", "aws", "az", "gcloud", "gsutil", "docker", "modprobe", "chmod",
    "oc",
];

/// The CLI's syntax: its commands, by path, and its long flags.
struct Syntax {
    commands: Vec<Vec<String>>,
    flags: Vec<String>,
}

fn syntax() -> Syntax {
    fn walk(cmd: &clap::Command, path: &[String], out: &mut Syntax) {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                out.flags.push(long.to_string());
            }
        }
        for sub in cmd.get_subcommands() {
            let mut names: Vec<String> = vec![sub.get_name().to_string()];
            names.extend(sub.get_all_aliases().map(String::from));
            for name in names {
                let mut p = path.to_vec();
                p.push(name);
                out.commands.push(p.clone());
                walk(sub, &p, out);
            }
        }
    }
    let mut s = Syntax {
        commands: Vec::new(),
        flags: Vec::new(),
    };
    walk(&crate::Cli::command(), &[], &mut s);
    s.flags.sort();
    s.flags.dedup();
    s
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Whether `needle` stands in `text` as a word of its own (nothing word-like
/// right before or after it).
fn has_word(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        !before.is_some_and(|c| is_word(c) && !needle.starts_with('`'))
            && !after.is_some_and(is_word)
    })
}

/// `text` without backticked spans that run another tool.
fn without_other_tools(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        let first = part.split_whitespace().next().unwrap_or("");
        if i % 2 == 1 && OTHER_TOOLS.contains(&first) {
            continue;
        }
        out.push_str(part);
        out.push('`');
    }
    out
}

/// What in `text` is CLI syntax, if anything.
fn cli_syntax(text: &str, syntax: &Syntax) -> Option<String> {
    for path in &syntax.commands {
        let joined = path.join(" ");
        // `hokan check`, `hokan etcd ls`: a command line.
        if path.len() == 1 && has_word(text, &format!("hokan {joined}")) {
            return Some(format!("hokan {joined}"));
        }
        // `repair packs`, `check --read-data`: a command without the
        // program's name ("the `key` bucket" is not one).
        if path.len() > 1 && text.contains(&format!("`{joined}")) {
            return Some(joined);
        }
        if path.len() == 1 && text.contains(&format!("`{joined} --")) {
            return Some(joined);
        }
    }
    if text.contains("hokan -") {
        return Some("hokan -".into());
    }
    let text = without_other_tools(text);
    syntax
        .flags
        .iter()
        .map(|f| format!("--{f}"))
        .find(|flag| has_word(&text, flag))
}

/// A Rust source split into its string literals (with their offsets) and
/// its code, in which comments and literals are blanked out, so braces and
/// attributes can be found in it.
fn literals(src: &str) -> (Vec<(usize, String)>, String) {
    let b = src.as_bytes();
    let mut code = String::with_capacity(src.len());
    let mut found = Vec::new();
    let mut i = 0;
    let blank = |code: &mut String, s: &str| {
        code.extend(s.chars().map(|c| if c == '\n' { '\n' } else { ' ' }))
    };
    while i < b.len() {
        let rest = &src[i..];
        let after_word = i > 0 && is_word(b[i - 1] as char);
        if rest.starts_with("//") {
            let end = rest.find('\n').map_or(b.len(), |n| i + n);
            blank(&mut code, &src[i..end]);
            i = end;
        } else if rest.starts_with("/*") {
            let (mut depth, mut j) = (1, i + 2);
            while j < b.len() && depth > 0 {
                if src[j..].starts_with("/*") {
                    depth += 1;
                    j += 2;
                } else if src[j..].starts_with("*/") {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut code, &src[i..j]);
            i = j;
        } else if !after_word
            && let Some(raw) = rest
                .strip_prefix("br")
                .or_else(|| rest.strip_prefix('r'))
                .filter(|r| r.trim_start_matches('#').starts_with('"'))
        {
            let hashes = raw.len() - raw.trim_start_matches('#').len();
            let start = i + (rest.len() - raw.len()) + hashes + 1;
            let close = format!("\"{}", "#".repeat(hashes));
            let end = src[start..].find(&close).map_or(b.len(), |n| start + n);
            found.push((i, src[start..end].to_string()));
            let stop = (end + close.len()).min(b.len());
            blank(&mut code, &src[i..stop]);
            i = stop;
        } else if b[i] == b'"' || (!after_word && rest.starts_with("b\"")) {
            let mut j = i + if b[i] == b'"' { 1 } else { 2 };
            let mut text = String::new();
            while j < b.len() && b[j] != b'"' {
                if b[j] == b'\\' {
                    // A line continuation drops the newline and the
                    // indentation after it.
                    if b.get(j + 1) == Some(&b'\n') {
                        j += 2;
                        while j < b.len() && b[j].is_ascii_whitespace() {
                            j += 1;
                        }
                        continue;
                    }
                    text.push_str(&src[j..j + 2]);
                    j += 2;
                    continue;
                }
                let c = src[j..].chars().next().expect("a char");
                text.push(c);
                j += c.len_utf8();
            }
            found.push((i, text));
            blank(&mut code, &src[i..(j + 1).min(b.len())]);
            i = j + 1;
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{1F}'), or a lifetime.
            let end = if let Some(escaped) = rest.strip_prefix("'\\") {
                escaped.find('\'').map(|n| n + 3)
            } else {
                rest.char_indices()
                    .nth(2)
                    .filter(|&(_, c)| c == '\'')
                    .map(|(n, _)| n + 1)
            };
            let n = end.unwrap_or(1);
            blank(&mut code, &src[i..i + n]);
            i += n;
        } else {
            let c = rest.chars().next().expect("a char");
            code.push(c);
            i += c.len_utf8();
        }
    }
    (found, code)
}

/// The byte ranges of `#[cfg(test)]` modules in `code`.
fn test_modules(code: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    for (at, _) in code.match_indices("#[cfg(test)]") {
        let after = &code[at..];
        let Some(open) = after.find('{') else {
            continue;
        };
        let head = &after["#[cfg(test)]".len()..open];
        if !head.split_whitespace().any(|w| w == "mod") || head.contains(';') {
            continue;
        }
        let mut depth = 0;
        for (n, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        out.push(at..at + open + n);
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every literal of the library crates' product code with CLI syntax in
/// it: `crate/src/file.rs:line: what: "literal"`.
fn violations(syntax: &Syntax) -> Vec<String> {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    for name in LIBRARIES {
        let mut files = Vec::new();
        sources(&crates.join(name).join("src"), &mut files);
        files.sort();
        for file in files {
            let shown = file
                .strip_prefix(&crates)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if TEST_SUPPORT.iter().any(|p| shown.starts_with(p)) {
                continue;
            }
            let src = std::fs::read_to_string(&file).unwrap();
            let (found, code) = literals(&src);
            let tests = test_modules(&code);
            for (at, text) in found {
                if tests.iter().any(|r| r.contains(&at)) {
                    continue;
                }
                if DATA.contains(&(shown.as_str(), text.as_str())) {
                    continue;
                }
                if let Some(what) = cli_syntax(&text, syntax) {
                    let line = src[..at].matches('\n').count() + 1;
                    out.push(format!("{shown}:{line}: {what}: {text:?}"));
                }
            }
        }
    }
    out
}

#[test]
fn no_library_message_names_a_cli_command_or_flag() {
    let syntax = syntax();
    assert!(syntax.flags.iter().any(|f| f == "read-data"));
    let found = violations(&syntax);
    assert!(
        found.is_empty(),
        "library strings with CLI syntax (say it in words there, and add the command \
         to the CLI's hint for the error):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_sees_cli_syntax_where_it_is_and_only_there() {
    let syntax = syntax();
    let flagged = [
        "run `hokan check --read-data` to find it",
        "see `hokan key list`",
        "`repair packs` salvages them",
        "give --uid-range FROM:TO",
        "pass --kubeconfig, set KUBECONFIG",
        "hokan -r REPO init",
    ];
    for text in flagged {
        assert!(cli_syntax(text, &syntax).is_some(), "{text}");
    }
    let clean = [
        "a key of the `key` bucket is shorter than 8 bytes",
        "check `kubectl config get-contexts`",
        "create it (`aws s3 mb s3://b`, with --endpoint-url for S3)",
        "upgrade hokan to read it",
        "it does not start with a hokan object header",
        "etcd needs a client certificate (etcd's --client-cert-auth)",
    ];
    for text in clean {
        assert_eq!(cli_syntax(text, &syntax), None, "{text}");
    }

    let src = "fn f() {\n    // \"--in-a-comment\"\n    let s = \"one \\\n        line\";\n    let c = '\"';\n    let r = r#\"raw \"quoted\"\"#;\n}\n#[cfg(test)]\nmod tests {\n    const T: &str = \"in a test\";\n}\n";
    let (found, code) = literals(src);
    let texts: Vec<&str> = found.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(texts, ["one line", "raw \"quoted\"", "in a test"]);
    let tests = test_modules(&code);
    assert_eq!(tests.len(), 1);
    let in_tests: Vec<bool> = found.iter().map(|(at, _)| tests[0].contains(at)).collect();
    assert_eq!(in_tests, [false, false, true]);
}
