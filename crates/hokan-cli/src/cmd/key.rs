//! `hokan key list|add|remove|passwd`: the key files that open a repository.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::Global;
use crate::output;

#[derive(clap::Subcommand, Debug)]
pub enum KeyCommand {
    /// List key files
    List,
    /// Add a key file for another password
    Add(NewKeyArgs),
    /// Remove a key file by id (or unique id prefix)
    Remove {
        /// The key file's id
        id: String,
    },
    /// Replace the key file in use with one for a new password
    Passwd(NewKeyArgs),
}

#[derive(clap::Args, Debug)]
pub struct NewKeyArgs {
    /// Read the new password from this file (else $HOKAN_NEW_PASSWORD, else a prompt)
    #[arg(long)]
    pub new_password_file: Option<PathBuf>,
    /// A label for the key file
    #[arg(long, default_value = "")]
    pub label: String,
    /// Argon2id memory
    #[arg(long, value_parser = hokan_repo::parse_size, default_value = "64M")]
    pub kdf_memory: u64,
    /// Argon2id passes
    #[arg(long, default_value_t = 3)]
    pub kdf_iterations: u32,
}

pub fn run(g: &Global, k: KeyCommand) -> Result<ExitCode> {
    let mut repo = super::open(g)?;
    match k {
        KeyCommand::List => {
            let keys = repo.keys()?;
            if g.json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "id": k.id.to_hex(), "current": k.current,
                            "username": k.info.username, "hostname": k.info.hostname,
                            "created": chrono::DateTime::from_timestamp(k.info.created, 0).map(|t| t.to_rfc3339()),
                            "label": k.info.label,
                            "kdf": {"algorithm": "argon2id", "memory_kib": k.kdf.memory_kib, "iterations": k.kdf.iterations, "parallelism": k.kdf.parallelism},
                        })
                    })
                    .collect();
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        vec![
                            format!("{}{}", if k.current { "*" } else { " " }, k.id.short()),
                            k.info.username.clone(),
                            k.info.hostname.clone(),
                            output::local_time(k.info.created),
                            k.info.label.clone(),
                        ]
                    })
                    .collect();
                output::table(&[" ID", "User", "Host", "Created", "Label"], &rows);
            }
        }
        KeyCommand::Add(a) => {
            let pw = crate::password::new_password(a.new_password_file.as_deref())?;
            let id = repo.add_key(
                pw.bytes(),
                super::init::kdf(a.kdf_memory, a.kdf_iterations),
                &a.label,
            )?;
            report(g, "key_added", &id)?;
        }
        KeyCommand::Remove { id } => {
            let removed = repo.remove_key(&id)?;
            report(g, "key_removed", &removed)?;
        }
        KeyCommand::Passwd(a) => {
            let pw = crate::password::new_password(a.new_password_file.as_deref())?;
            let id =
                repo.change_password(pw.bytes(), super::init::kdf(a.kdf_memory, a.kdf_iterations))?;
            report(g, "password_changed", &id)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(g: &Global, what: &str, id: &hokan_core::Id) -> Result<()> {
    if g.json {
        output::json(&serde_json::json!({"message_type": what, "id": id.to_hex()}))
    } else {
        if !g.quiet {
            println!("{}: key {}", what.replace('_', " "), id.short());
        }
        Ok(())
    }
}
