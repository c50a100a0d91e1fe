//! `hokan completions SHELL`: a completion script, from the same clap
//! definitions the parser uses (so it never goes stale).

use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell;

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell. Install e.g. with
    /// `hokan completions bash > /etc/bash_completion.d/hokan`
    pub shell: Shell,
}

pub fn run(a: CompletionsArgs) -> Result<ExitCode> {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "hokan", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
