//! Developer tool: writes `src/schema_generated.rs`, the decoding schema,
//! from checkouts of the Kubernetes API repositories. Nothing runs at build
//! time; the generated tables are committed. See `SOURCE.md` for the
//! commits in use and the exact commands.
//!
//! ```text
//! cargo run -p hokan-k8s-codec --example gen-schema -- \
//!     --api DIR --api-commit SHA \
//!     --apimachinery DIR --apimachinery-commit SHA \
//!     [--out FILE | --check]
//! ```
//!
//! `--api` is a checkout of kubernetes/api (k8s.io/api), `--apimachinery` one
//! of kubernetes/apimachinery; the commits only label the output. `--check`
//! compares with the committed file instead of writing it. The tool uses
//! nothing from the library, so when a change to `src/schema.rs` leaves the
//! library unbuildable until the tables are regenerated, build it alone:
//! `rustc --edition 2024 -O examples/gen-schema/main.rs -o gen-schema`
//! (then pass `--out`).
//!
//! The wire layout comes from each package's `generated.proto`, the JSON form
//! from the Go struct tags in the same package. Joining the two per field
//! (by protobuf field number) also checks them against each other, so a
//! parser slip or an unknown construct is an error here instead of wrong
//! JSON at run time.

mod golang;
mod join;
mod proto;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The apimachinery packages the API types refer to. The others with a
/// `generated.proto` are test fixtures (`testapigroup`) or define no
/// messages (`runtime/schema`).
const APIMACHINERY_PACKAGES: &[&str] = &[
    "pkg/api/resource",
    "pkg/apis/meta/v1",
    "pkg/apis/meta/v1beta1",
    "pkg/runtime",
    "pkg/util/intstr",
];

struct Args {
    api: PathBuf,
    api_commit: String,
    apimachinery: PathBuf,
    apimachinery_commit: String,
    out: PathBuf,
    check: bool,
}

const USAGE: &str = "usage: gen-schema --api DIR --api-commit SHA \
--apimachinery DIR --apimachinery-commit SHA [--out FILE | --check]";

fn parse_args() -> Result<Args, String> {
    let mut api = None;
    let mut api_commit = None;
    let mut apimachinery = None;
    let mut apimachinery_commit = None;
    let mut out = None;
    let mut check = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value\n{USAGE}"));
        match a.as_str() {
            "--api" => api = Some(PathBuf::from(value()?)),
            "--api-commit" => api_commit = Some(value()?),
            "--apimachinery" => apimachinery = Some(PathBuf::from(value()?)),
            "--apimachinery-commit" => apimachinery_commit = Some(value()?),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--check" => check = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let missing = |what: &str| format!("{what} is required\n{USAGE}");
    Ok(Args {
        api: api.ok_or_else(|| missing("--api"))?,
        api_commit: api_commit.ok_or_else(|| missing("--api-commit"))?,
        apimachinery: apimachinery.ok_or_else(|| missing("--apimachinery"))?,
        apimachinery_commit: apimachinery_commit.ok_or_else(|| missing("--apimachinery-commit"))?,
        out: match (out, option_env!("CARGO_MANIFEST_DIR")) {
            (Some(out), _) => out,
            (None, Some(dir)) => Path::new(dir).join("src/schema_generated.rs"),
            (None, None) => return Err(missing("--out (outside cargo)")),
        },
        check,
    })
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    for (dir, name) in [(&args.api, "--api"), (&args.apimachinery, "--apimachinery")] {
        if !dir.join("go.mod").is_file() {
            return Err(format!(
                "{name} {}: not a checkout (no go.mod)",
                dir.display()
            ));
        }
    }
    // (import path, directory) of every package to read.
    let mut dirs = Vec::new();
    find_packages(&args.api, &mut dirs);
    let mut dirs: Vec<(String, PathBuf)> = dirs
        .into_iter()
        .map(|d| {
            let rel = d.strip_prefix(&args.api).unwrap().to_string_lossy();
            (format!("k8s.io/api/{}", rel.replace('\\', "/")), d)
        })
        .collect();
    for p in APIMACHINERY_PACKAGES {
        dirs.push((
            format!("k8s.io/apimachinery/{p}"),
            args.apimachinery.join(p),
        ));
    }
    dirs.sort();
    let mut packages = Vec::new();
    for (import_path, dir) in &dirs {
        packages.push(join::load_package(import_path, dir)?);
    }
    let code = join::generate(
        &packages,
        &[
            ("kubernetes/api", &args.api_commit),
            ("kubernetes/apimachinery", &args.apimachinery_commit),
        ],
    )?;
    if args.check {
        let old = std::fs::read_to_string(&args.out)
            .map_err(|e| format!("{}: {e}", args.out.display()))?;
        if old != code {
            return Err(format!(
                "{} differs from what these sources generate",
                args.out.display()
            ));
        }
        eprintln!("{} is up to date", args.out.display());
    } else {
        std::fs::write(&args.out, &code).map_err(|e| format!("{}: {e}", args.out.display()))?;
        eprintln!("wrote {} ({} bytes)", args.out.display(), code.len());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen-schema: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every directory under `dir` with a `generated.proto`.
fn find_packages(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            find_packages(&p, out);
        } else if p.file_name().is_some_and(|n| n == "generated.proto") {
            out.push(dir.to_path_buf());
        }
    }
}
