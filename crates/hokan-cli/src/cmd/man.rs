//! `hokan man [--dir DIR]`: the man page, rendered from the clap
//! definitions (so it says what the parser accepts).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::Global;

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write hokan.1 and one page per command (hokan-backup.1, ...) into
    /// this directory instead of printing hokan.1 to stdout
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn run(g: &Global, a: ManArgs) -> Result<ExitCode> {
    let cmd = crate::Cli::command();
    match a.dir {
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .context("writing the man page")?,
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            let pages = std::fs::read_dir(&dir)?
                .filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "1"))
                })
                .count();
            if g.json {
                crate::output::json(&serde_json::json!({"dir": dir, "pages": pages}))?;
            } else if !g.quiet {
                println!("wrote {pages} man pages to {}", dir.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
