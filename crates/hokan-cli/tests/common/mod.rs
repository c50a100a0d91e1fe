//! Helpers for tests that drive the `hokan` binary.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// The binary under test, with a cheap password setup and no shared cache.
pub fn hokan(repo: &str, cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hokan"));
    c.arg("-r").arg(repo).arg("--cache-dir").arg(cache);
    c.env("HOKAN_PASSWORD", "test password");
    c.env_remove("HOKAN_REPOSITORY");
    c.env_remove("HOKAN_PASSWORD_FILE");
    c
}

/// Runs to completion with `stdin` fed in; returns the output.
pub fn run_with_input(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// Starts a process with a file as its stdin.
pub fn spawn_with_file(mut cmd: Command, stdin: &Path) -> Child {
    cmd.stdin(std::fs::File::open(stdin).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs and returns the output.
pub fn run(mut cmd: Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

/// Panics with stderr unless the command succeeded.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `init` with cheap key stretching.
pub fn init(repo: &str, cache: &Path) {
    let mut c = hokan(repo, cache);
    c.args([
        "init",
        "--kdf-memory",
        "1M",
        "--kdf-iterations",
        "1",
        "--pack-size",
        "4M",
    ]);
    ok(&run(c));
}

/// Snapshots as JSON.
pub fn snapshots(repo: &str, cache: &Path) -> Vec<serde_json::Value> {
    let mut c = hokan(repo, cache);
    c.args(["snapshots", "--json"]);
    serde_json::from_str(&ok(&run(c))).unwrap()
}

/// Every file below `dir`, at any depth.
pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// `p` as a C string, for libc calls.
pub fn cpath(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

/// An extended attribute's value, if the file has it.
pub fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let name = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the length given.
    let n = unsafe {
        libc::getxattr(
            cpath(path).as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

/// Sets an extended attribute; false where the file system has none of
/// its namespace (`user.` on tmpfs before Linux 6.6, for one).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and a value of the length given.
    unsafe {
        libc::setxattr(
            cpath(path).as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}
