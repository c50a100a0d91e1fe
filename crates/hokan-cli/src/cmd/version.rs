//! `hokan version`: this build, and the repository formats it reads.

use std::process::ExitCode;

use anyhow::Result;
use hokan_core::FormatVersion;

use crate::Global;
use crate::output;

#[derive(clap::Args, Debug)]
pub struct VersionArgs {}

pub fn run(g: &Global, _a: VersionArgs) -> Result<ExitCode> {
    // Every format up to the current one is read; new repositories get
    // the current one.
    let formats: Vec<u16> = (1..=FormatVersion::CURRENT.number()).collect();
    let rustc = env!("HOKAN_RUSTC_VERSION");
    let target = env!("HOKAN_TARGET");
    if g.json {
        output::json(&serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "repository_formats": formats,
            "repository_format_written": FormatVersion::CURRENT.number(),
            "pack_versions_read": hokan_core::pack::PACK_VERSIONS_READ,
            "config_version_max": hokan_repo::object::Kind::Config.current_version(),
            "immutable_mode": true,
            "rustc": rustc, "target": target,
        }))?;
    } else {
        println!("hokan {}", env!("CARGO_PKG_VERSION"));
        println!(
            "repository formats: {} (new repositories: {})",
            formats
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            FormatVersion::CURRENT.number()
        );
        println!("immutable repositories (config version 3, `init --immutable`): supported");
        println!("built with {rustc} for {target}");
    }
    Ok(ExitCode::SUCCESS)
}
