//! From the resources' fields to the libraries' options: the same values
//! the `hokan` command builds from its flags, so a policy and a command
//! line with the same settings do the same thing.

use hokan_k8s::backup::BackupOptions;
use hokan_k8s::filter::ClusterResources;
use hokan_repo::retention::{CalendarDuration, Count, Policy};

use crate::api::common::{ResourceFilter, Retention, selector_string};
use crate::api::policy::ResourceSource;

/// A field of a resource that cannot be used, with the reason in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// The field's path in the resource (`spec.etcd.retention.keepSize`).
    pub field: String,
    /// What is wrong and what to write instead.
    pub reason: String,
}

impl Invalid {
    /// `field` is wrong: `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// A retention section as the repository's policy. `at` names the section
/// in errors. An empty section is an empty policy (nothing is forgotten);
/// a section whose rules keep nothing is refused, as `forget` refuses it.
pub fn retention_policy(r: &Retention, at: &str) -> Result<Policy, Invalid> {
    let count = |n: Option<u32>| n.map(Count::Up);
    let within = match &r.keep_within {
        Some(s) => Some(
            CalendarDuration::parse(s)
                .map_err(|e| Invalid::new(format!("{at}.keepWithin"), e.to_string()))?,
        ),
        None => None,
    };
    let size = match &r.keep_size {
        Some(s) => Some(hokan_repo::parse_size(s).map_err(|e| {
            Invalid::new(
                format!("{at}.keepSize"),
                format!("{e}; write a size such as 50G or 500M"),
            )
        })?),
        None => None,
    };
    let policy = Policy {
        last: count(r.keep_last),
        hourly: count(r.keep_hourly),
        daily: count(r.keep_daily),
        weekly: count(r.keep_weekly),
        monthly: count(r.keep_monthly),
        yearly: count(r.keep_yearly),
        within,
        tags: Vec::new(),
        size,
    };
    if !policy.is_empty() {
        policy
            .check()
            .map_err(|e| Invalid::new(at.to_string(), e.to_string()))?;
    }
    Ok(policy)
}

/// Velero's `includeClusterResources` as hokan-k8s's rule.
pub fn cluster_resources(include: Option<bool>) -> ClusterResources {
    match include {
        Some(true) => ClusterResources::Include,
        Some(false) => ClusterResources::Exclude,
        None => ClusterResources::Auto,
    }
}

/// A resource section as hokan-k8s's backup options.
pub fn backup_options(source: &ResourceSource) -> BackupOptions {
    let f: &ResourceFilter = &source.filter;
    BackupOptions {
        include_namespaces: f.included_namespaces.clone(),
        exclude_namespaces: f.excluded_namespaces.clone(),
        include_resources: f.included_resources.clone(),
        exclude_resources: f.excluded_resources.clone(),
        selector: f
            .label_selector
            .as_ref()
            .map(selector_string)
            .filter(|s| !s.is_empty()),
        cluster_resources: cluster_resources(f.include_cluster_resources),
        all_api_versions: source.all_api_versions,
        exclude_operators: source.exclude_operators,
        ..BackupOptions::default()
    }
}

/// Short, human sizes for status (`1.5 GiB`), as `hokan` prints them.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    #[test]
    fn retention_maps_every_rule() {
        let r = Retention {
            keep_last: Some(5),
            keep_hourly: Some(24),
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            keep_yearly: Some(2),
            keep_within: Some("1m15d".into()),
            keep_size: Some("50G".into()),
        };
        let p = retention_policy(&r, "spec.etcd.retention").unwrap();
        assert_eq!(p.last, Some(Count::Up(5)));
        assert_eq!(p.hourly, Some(Count::Up(24)));
        assert_eq!(p.daily, Some(Count::Up(7)));
        assert_eq!(p.weekly, Some(Count::Up(4)));
        assert_eq!(p.monthly, Some(Count::Up(12)));
        assert_eq!(p.yearly, Some(Count::Up(2)));
        assert_eq!(p.within.unwrap().to_string(), "1m15d");
        assert_eq!(p.size, Some(50 << 30));
    }

    #[test]
    fn empty_retention_forgets_nothing() {
        assert!(
            retention_policy(&Retention::default(), "r")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn bad_retention_names_the_field() {
        let r = Retention {
            keep_size: Some("lots".into()),
            ..Default::default()
        };
        let e = retention_policy(&r, "spec.resources.retention").unwrap_err();
        assert_eq!(e.field, "spec.resources.retention.keepSize");
        let r = Retention {
            keep_within: Some("2 weeks".into()),
            ..Default::default()
        };
        let e = retention_policy(&r, "spec.etcd.retention").unwrap_err();
        assert_eq!(e.field, "spec.etcd.retention.keepWithin");
        // A rule of 0 keeps nothing: refused, as `forget --keep-last 0` is.
        let r = Retention {
            keep_last: Some(0),
            ..Default::default()
        };
        assert!(retention_policy(&r, "r").is_err());
    }

    #[test]
    fn resource_filters_become_backup_options() {
        let source = ResourceSource {
            filter: ResourceFilter {
                included_namespaces: vec!["shop".into()],
                excluded_namespaces: vec!["shop-old".into()],
                included_resources: vec!["deploy".into()],
                excluded_resources: vec!["events".into()],
                label_selector: Some(LabelSelector {
                    match_labels: Some([("app".to_string(), "web".to_string())].into()),
                    match_expressions: None,
                }),
                include_cluster_resources: Some(false),
            },
            exclude_operators: true,
            all_api_versions: false,
            retention: None,
        };
        let o = backup_options(&source);
        assert_eq!(o.include_namespaces, ["shop"]);
        assert_eq!(o.exclude_namespaces, ["shop-old"]);
        assert_eq!(o.include_resources, ["deploy"]);
        assert_eq!(o.exclude_resources, ["events"]);
        assert_eq!(o.selector.as_deref(), Some("app=web"));
        assert_eq!(o.cluster_resources, ClusterResources::Exclude);
        assert!(o.exclude_operators && !o.all_api_versions);
        assert_eq!(o.page_size, 500);
        assert_eq!(cluster_resources(None), ClusterResources::Auto);
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
