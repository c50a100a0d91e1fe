//! What a restore did: one [`Outcome`] per planned object, handed to the
//! caller as it happens, and a [`RestoreReport`] of totals and warnings.
//!
//! Outcomes are streamed rather than kept because a report of 100,000
//! outcomes (each with its sanitizing notes) costs more memory than the
//! restore itself; [`execute`](super::execute) collects them for callers
//! that want them all at once.

use std::fmt;

use hokan_core::text::escape;
use serde::Serialize;

use crate::object::ObjectKey;

/// What happened to one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Created (201).
    Created,
    /// Existed and was updated (`--existing-resource-policy update`).
    Updated,
    /// Existed with the same content.
    Unchanged,
    /// Existed with other content and was left alone (policy `none`).
    LeftAlone,
    /// Written to this file.
    Written(String),
    /// Would be created (dry run).
    WouldCreate,
    /// Not restored, and why.
    Skipped(String),
    /// The server refused it; the restore went on.
    Failed(String),
    /// A second outcome for an object created before its owners: its owner
    /// references were set once the owners existed (the notes say which).
    OwnersLinked,
}

impl Action {
    /// A one-word name for JSON and counts.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::LeftAlone => "left-alone",
            Action::Written(_) => "written",
            Action::WouldCreate => "would-create",
            Action::Skipped(_) => "skipped",
            Action::Failed(_) => "failed",
            Action::OwnersLinked => "owners-linked",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Created => f.write_str("created"),
            Action::Updated => f.write_str("exists, updated"),
            Action::Unchanged => f.write_str("exists, unchanged"),
            Action::LeftAlone => f.write_str("exists with other content, left alone (policy none)"),
            Action::Written(p) => write!(f, "written to {}", escape(p)),
            Action::WouldCreate => f.write_str("would be created"),
            Action::Skipped(why) => write!(f, "skipped: {}", escape(why)),
            Action::Failed(why) => write!(f, "FAILED: {}", escape(why)),
            Action::OwnersLinked => f.write_str("owner references set"),
        }
    }
}

/// One object's outcome.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The object's position in the plan ([`RestorePlan::steps`](super::RestorePlan::steps)).
    pub step: usize,
    /// The object in the backup.
    pub source: ObjectKey,
    /// `configmaps shop-dr/web`: the object in the target.
    pub target: String,
    /// The `apiVersion` it was restored in.
    pub api_version: String,
    /// What happened.
    pub action: Action,
    /// What sanitizing removed or changed.
    pub sanitized: Vec<String>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>4}. {} {}: {}",
            self.step + 1,
            escape(&self.target),
            self.api_version,
            self.action
        )?;
        if !self.sanitized.is_empty() {
            write!(f, "\n        sanitized: {}", self.sanitized.join(", "))?;
        }
        Ok(())
    }
}

/// How many objects ended which way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Created in the cluster.
    pub created: u64,
    /// Existing and updated.
    pub updated: u64,
    /// Existing with the same content.
    pub unchanged: u64,
    /// Existing with other content, left alone.
    pub left_alone: u64,
    /// Written as manifests.
    pub written: u64,
    /// Would be created (dry run).
    pub would_create: u64,
    /// Not restored by a rule.
    pub skipped: u64,
    /// Refused by the server.
    pub failed: u64,
}

impl Totals {
    /// Counts one outcome (the follow-up [`Action::OwnersLinked`] is not a
    /// second object and is not counted).
    pub fn add(&mut self, action: &Action) {
        let slot = match action {
            Action::Created => &mut self.created,
            Action::Updated => &mut self.updated,
            Action::Unchanged => &mut self.unchanged,
            Action::LeftAlone => &mut self.left_alone,
            Action::Written(_) => &mut self.written,
            Action::WouldCreate => &mut self.would_create,
            Action::Skipped(_) => &mut self.skipped,
            Action::Failed(_) => &mut self.failed,
            Action::OwnersLinked => return,
        };
        *slot += 1;
    }

    /// Objects handled.
    pub fn objects(&self) -> u64 {
        self.created
            + self.updated
            + self.unchanged
            + self.left_alone
            + self.written
            + self.would_create
            + self.skipped
            + self.failed
    }
}

/// Everything a restore did.
#[derive(Clone, Debug, Default)]
pub struct RestoreReport {
    /// One per planned object, in order, when collected by
    /// [`execute`](super::execute); empty from
    /// [`execute_with`](super::execute_with), which hands them to its
    /// callback instead.
    pub outcomes: Vec<Outcome>,
    /// How many objects ended which way.
    pub totals: Totals,
    /// Things a person should know (a namespace's UID range, a CRD slow to
    /// be Established, a namespace created bare).
    pub warnings: Vec<String>,
}

impl RestoreReport {
    /// How many collected outcomes match `f`.
    pub fn count(&self, f: impl Fn(&Action) -> bool) -> usize {
        self.outcomes.iter().filter(|o| f(&o.action)).count()
    }

    /// The collected outcome for the target object labelled `target`.
    pub fn outcome(&self, target: &str) -> Option<&Outcome> {
        self.outcomes.iter().find(|o| o.target == target)
    }

    /// Adds an outcome to the collected ones: a follow-up
    /// ([`Action::OwnersLinked`]) adds its notes to its object's outcome.
    pub(crate) fn collect(&mut self, outcome: &Outcome) {
        if outcome.action == Action::OwnersLinked
            && let Some(first) = self.outcomes.get_mut(outcome.step)
        {
            first.sanitized.extend(outcome.sanitized.iter().cloned());
            return;
        }
        self.outcomes.push(outcome.clone());
    }
}

impl fmt::Display for RestoreReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in &self.outcomes {
            writeln!(f, "{o}")?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
