//! Restore: [`plan`] orders the stored objects and picks their versions;
//! [`execute`] sanitizes each one and creates it in a cluster, writes it to a
//! directory, or only reports what it would do ([`Target::DryRun`]).

mod execute;
mod plan;
mod report;
mod sanitize;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub use execute::{OPENSHIFT_UID_RANGE, ORDER_FILE, Target, execute, execute_with};
pub use plan::{
    HIGH_PRIORITIES, LOW_PRIORITIES, NEVER_RESTORED, RestorePlan, Skipped, Step, VersionChoice,
    plan, priority,
};
pub use report::{Action, Outcome, RestoreReport, Totals};
pub use sanitize::{SanitizeOptions, Sanitized, sanitize};

use crate::{Error, Result};

/// What to do with an object that exists in the target already.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExistingPolicy {
    /// Leave it as it is (report whether it differs), Velero's default.
    #[default]
    None,
    /// Update it to the backed-up content.
    Update,
}

impl std::str::FromStr for ExistingPolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(ExistingPolicy::None),
            "update" => Ok(ExistingPolicy::Update),
            _ => Err(Error::InvalidOption {
                option: "existing-resource policy",
                value: s.to_string(),
                reason: "expected none or update".into(),
            }),
        }
    }
}

impl fmt::Display for ExistingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExistingPolicy::None => "none",
            ExistingPolicy::Update => "update",
        })
    }
}

/// How to restore. `Default` restores everything as Velero does.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Namespace globs to restore (source names; empty: all).
    pub include_namespaces: Vec<String>,
    /// Namespace globs to leave out.
    pub exclude_namespaces: Vec<String>,
    /// Resources to restore (empty: all).
    pub include_resources: Vec<String>,
    /// Resources to leave out.
    pub exclude_resources: Vec<String>,
    /// Source namespace → target namespace.
    pub namespace_mapping: BTreeMap<String, String>,
    /// Objects that exist already.
    pub existing: ExistingPolicy,
    /// Resources whose status is restored (`*`: all).
    pub restore_status: Vec<String>,
    /// Keep services' node ports.
    pub preserve_node_ports: bool,
    /// How long to wait for a CRD to be Established.
    pub crd_timeout: Duration,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            include_namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            include_resources: Vec::new(),
            exclude_resources: Vec::new(),
            namespace_mapping: BTreeMap::new(),
            existing: ExistingPolicy::None,
            restore_status: Vec::new(),
            preserve_node_ports: false,
            crd_timeout: Duration::from_secs(60),
        }
    }
}

/// Parses `--namespace-mapping a:b,c:d`.
pub fn parse_namespace_mapping(text: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = |reason: &str| Error::InvalidOption {
            option: "namespace mapping",
            value: pair.to_string(),
            reason: format!("{reason}; expected SOURCE:TARGET[,SOURCE:TARGET…]"),
        };
        let (from, to) = pair.split_once(':').ok_or_else(|| bad("no ':'"))?;
        let (from, to) = (from.trim(), to.trim());
        for ns in [from, to] {
            let ok = !ns.is_empty()
                && ns.len() <= 63
                && ns
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !ns.starts_with('-')
                && !ns.ends_with('-');
            if !ok {
                return Err(bad(&format!("{ns:?} is not a namespace name")));
            }
        }
        if out.insert(from.to_string(), to.to_string()).is_some() {
            return Err(bad(&format!("{from} is mapped twice")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_mappings_parse_and_refuse_garbage() {
        let m = parse_namespace_mapping("shop:shop-dr, db:db2").unwrap();
        assert_eq!(m["shop"], "shop-dr");
        assert_eq!(m["db"], "db2");
        for bad in ["shop", "shop:", "Shop:x", "a:b,a:c", "a:-b"] {
            assert!(parse_namespace_mapping(bad).is_err(), "{bad}");
        }
        assert_eq!(
            "update".parse::<ExistingPolicy>().unwrap(),
            ExistingPolicy::Update
        );
        assert!("overwrite".parse::<ExistingPolicy>().is_err());
    }
}
