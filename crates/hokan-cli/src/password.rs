//! Where passwords come from: a file, an environment variable, or a prompt.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// A password as given, and the form hokan uses: the first line without
/// its line ending, whether it came from a file or a variable. `echo pw >
/// file` and `HOKAN_PASSWORD=$(cat file)` (or a Kubernetes Secret mounted
/// as a variable, which keeps the newline) then mean the same password.
pub struct Password {
    /// The first line, without `\n` or `\r\n`.
    line: Vec<u8>,
    /// Every byte as given, when that differs from `line`.
    exact: Option<Vec<u8>>,
}

impl Password {
    fn new(given: Vec<u8>) -> Password {
        let line = given.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
        let exact = (line != given).then_some(given);
        Password { line, exact }
    }

    /// The bytes a new key file is made with.
    pub fn bytes(&self) -> &[u8] {
        &self.line
    }

    /// Runs `open` with the password, and with the exact bytes given if
    /// those differ and the password is refused. Releases before this one
    /// took `$HOKAN_PASSWORD` byte for byte, trailing newline included, so
    /// a repository may hold a key made with those bytes: it must still
    /// open. The first refusal is the one reported.
    pub fn open<T>(&self, open: impl Fn(&[u8]) -> hokan_repo::Result<T>) -> hokan_repo::Result<T> {
        match (open(&self.line), &self.exact) {
            (Err(e @ hokan_repo::Error::WrongPassword { .. }), Some(exact)) => {
                open(exact).map_err(|_| e)
            }
            (r, _) => r,
        }
    }
}

fn from_file(path: &Path) -> Result<Password> {
    let text = std::fs::read(path)
        .with_context(|| format!("reading the password file {}", path.display()))?;
    // Like restic: the first line, without its line ending.
    let p = Password::new(text);
    if p.line.is_empty() {
        bail!("the password file {} is empty", path.display());
    }
    Ok(p)
}

fn prompt(message: &str) -> Result<Password> {
    prompt_or(
        message,
        "set HOKAN_PASSWORD or HOKAN_PASSWORD_FILE, or pass --password-file",
    )
}

/// Prompts on the terminal; without one, fails saying `how` else to give it.
fn prompt_or(message: &str, how: &str) -> Result<Password> {
    if !std::io::stdin().is_terminal() {
        bail!("no password given: {how} (stdin is not a terminal, so hokan cannot prompt)");
    }
    Ok(Password::new(
        rpassword::prompt_password(message)
            .context("reading the password from the terminal")?
            .into_bytes(),
    ))
}

/// The password in environment variable `var`, if it is set (empty is an
/// error), read as a password file is.
fn from_env(var: &str) -> Result<Option<Password>> {
    match std::env::var_os(var) {
        Some(p) => {
            let p = Password::new(std::os::unix::ffi::OsStringExt::into_vec(p));
            if p.line.is_empty() {
                bail!("{var} is set but empty (or its first line is)");
            }
            Ok(Some(p))
        }
        None => Ok(None),
    }
}

/// The repository password: `--password-file`, `$HOKAN_PASSWORD`, or a prompt.
pub fn repository(file: Option<&Path>) -> Result<Password> {
    if let Some(f) = file {
        return from_file(f);
    }
    if let Some(p) = from_env("HOKAN_PASSWORD")? {
        return Ok(p);
    }
    prompt("enter password for repository: ")
}

/// A new password (init, key add, key passwd): `--new-password-file`,
/// `$HOKAN_NEW_PASSWORD`, or a prompt asked twice.
pub fn new_password(file: Option<&Path>) -> Result<Password> {
    if let Some(f) = file {
        return from_file(f);
    }
    if let Some(p) = from_env("HOKAN_NEW_PASSWORD")? {
        return Ok(p);
    }
    let first = prompt("enter new password: ")?;
    let second = prompt("enter the new password again: ")?;
    if first.line != second.line {
        bail!("the passwords do not match; nothing was changed");
    }
    Ok(first)
}

/// The password of the repository copied from (`copy --from-repo`, `init
/// --copy-chunker-params-from`): `--from-password-file`,
/// `$HOKAN_FROM_PASSWORD`, or a prompt.
pub fn source(file: Option<&Path>) -> Result<Password> {
    if let Some(f) = file {
        return from_file(f);
    }
    if let Some(p) = from_env("HOKAN_FROM_PASSWORD")? {
        return Ok(p);
    }
    prompt_or(
        "enter password for the source repository: ",
        "set HOKAN_FROM_PASSWORD or HOKAN_FROM_PASSWORD_FILE, or pass --from-password-file",
    )
}
