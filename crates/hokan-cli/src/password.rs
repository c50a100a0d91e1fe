//! Where passwords come from: a file, an environment variable, or a prompt.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};

fn from_file(path: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read(path)
        .with_context(|| format!("reading the password file {}", path.display()))?;
    // Like restic: the first line, without its line ending.
    let line = text.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        bail!("the password file {} is empty", path.display());
    }
    Ok(line.to_vec())
}

fn prompt(message: &str) -> Result<Vec<u8>> {
    prompt_or(
        message,
        "set HOKAN_PASSWORD or HOKAN_PASSWORD_FILE, or pass --password-file",
    )
}

/// Prompts on the terminal; without one, fails saying `how` else to give it.
fn prompt_or(message: &str, how: &str) -> Result<Vec<u8>> {
    if !std::io::stdin().is_terminal() {
        bail!("no password given: {how} (stdin is not a terminal, so hokan cannot prompt)");
    }
    Ok(rpassword::prompt_password(message)
        .context("reading the password from the terminal")?
        .into_bytes())
}

/// The password in environment variable `var`, if it is set (empty is an error).
fn from_env(var: &str) -> Result<Option<Vec<u8>>> {
    match std::env::var(var) {
        Ok(p) if p.is_empty() => bail!("{var} is set but empty"),
        Ok(p) => Ok(Some(p.into_bytes())),
        Err(_) => Ok(None),
    }
}

/// The repository password: `--password-file`, `$HOKAN_PASSWORD`, or a prompt.
pub fn repository(file: Option<&Path>) -> Result<Vec<u8>> {
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
pub fn new_password(file: Option<&Path>) -> Result<Vec<u8>> {
    if let Some(f) = file {
        return from_file(f);
    }
    if let Some(p) = from_env("HOKAN_NEW_PASSWORD")? {
        return Ok(p);
    }
    let first = prompt("enter new password: ")?;
    let second = prompt("enter the new password again: ")?;
    if first != second {
        bail!("the passwords do not match; nothing was changed");
    }
    Ok(first)
}

/// The password of the repository copied from (`copy --from-repo`, `init
/// --copy-chunker-params-from`): `--from-password-file`,
/// `$HOKAN_FROM_PASSWORD`, or a prompt.
pub fn source(file: Option<&Path>) -> Result<Vec<u8>> {
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
