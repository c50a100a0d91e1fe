//! Kubernetes' version priority: which of `v1`, `v2beta1`, `v1alpha3` wins.
//!
//! The rule is apimachinery's `CompareKubeAwareVersionStrings`: GA before
//! beta before alpha; within one level the higher major, then the higher
//! minor, first; versions that do not look like `v<N>[alpha|beta<M>]` come
//! last, in string order. Restore uses it to pick "the highest common
//! version" when neither cluster's preferred version fits.

use std::cmp::Ordering;

/// Orders versions from the highest priority to the lowest (`v2` < `v1` <
/// `v1beta1` in this ordering, so a sorted list starts with the one to use).
pub fn compare_priority(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x
            .level
            .cmp(&y.level)
            .then(y.major.cmp(&x.major))
            .then(y.minor.cmp(&x.minor)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// Sorts versions by priority, highest first.
pub fn sort_by_priority(versions: &mut [String]) {
    versions.sort_by(|a, b| compare_priority(a, b));
}

struct KubeVersion {
    /// 0 GA, 1 beta, 2 alpha: lower sorts first.
    level: u8,
    major: u64,
    minor: u64,
}

fn parse(v: &str) -> Option<KubeVersion> {
    let rest = v.strip_prefix('v')?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (major, rest) = rest.split_at(digits);
    if major.is_empty() || major.starts_with('0') {
        return None;
    }
    let major = major.parse().ok()?;
    if rest.is_empty() {
        return Some(KubeVersion {
            level: 0,
            major,
            minor: 0,
        });
    }
    let (level, minor) = if let Some(m) = rest.strip_prefix("beta") {
        (1, m)
    } else if let Some(m) = rest.strip_prefix("alpha") {
        (2, m)
    } else {
        return None;
    };
    if minor.is_empty() || minor.starts_with('0') || !minor.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(KubeVersion {
        level,
        major,
        minor: minor.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_apimachinery_examples() {
        // The order given in apimachinery's documentation of the rule.
        let expected = [
            "v10",
            "v2",
            "v1",
            "v11beta2",
            "v10beta3",
            "v3beta1",
            "v12alpha1",
            "v11alpha2",
            "foo1",
            "foo10",
        ];
        let mut shuffled: Vec<String> = expected.iter().rev().map(|s| s.to_string()).collect();
        shuffled.swap(2, 7);
        sort_by_priority(&mut shuffled);
        assert_eq!(shuffled, expected);
    }

    #[test]
    fn malformed_versions_sort_last() {
        assert_eq!(compare_priority("v1", "v01"), Ordering::Less);
        assert_eq!(compare_priority("v1beta", "v1alpha1"), Ordering::Greater);
        assert_eq!(compare_priority("v2gamma1", "v1"), Ordering::Greater);
    }
}
