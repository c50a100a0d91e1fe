//! The built-in resources the API server stores in etcd, with the key path
//! each is stored under — from kube-apiserver's storage registry and its
//! `test/integration/etcd/data.go` (`ExpectedEtcdPath`) — and the kinds that
//! exist in the API but are never stored.

/// One built-in resource stored in etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinResource {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// The REST resource, e.g. `deployments`.
    pub resource: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// The key path after the prefix (`/registry/`): usually the resource,
    /// but Kubernetes keeps some historic names (`minions`, `services/specs`, …).
    pub key_path: &'static str,
}

const fn r(
    group: &'static str,
    resource: &'static str,
    kind: &'static str,
    namespaced: bool,
    key_path: &'static str,
) -> BuiltinResource {
    BuiltinResource {
        group,
        resource,
        kind,
        namespaced,
        key_path,
    }
}

const NS: bool = true;
const CLUSTER: bool = false;

/// Every built-in resource kube-apiserver (and its aggregator and
/// apiextensions servers) stores. Resources served by several group versions
/// or groups share one entry: the storage is one.
pub static BUILTIN_RESOURCES: &[BuiltinResource] = &[
    r("", "configmaps", "ConfigMap", NS, "configmaps"),
    r("", "endpoints", "Endpoints", NS, "services/endpoints"),
    r("", "events", "Event", NS, "events"),
    r("", "limitranges", "LimitRange", NS, "limitranges"),
    r("", "namespaces", "Namespace", CLUSTER, "namespaces"),
    r("", "nodes", "Node", CLUSTER, "minions"),
    r(
        "",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        NS,
        "persistentvolumeclaims",
    ),
    r(
        "",
        "persistentvolumes",
        "PersistentVolume",
        CLUSTER,
        "persistentvolumes",
    ),
    r("", "pods", "Pod", NS, "pods"),
    r("", "podtemplates", "PodTemplate", NS, "podtemplates"),
    r(
        "",
        "replicationcontrollers",
        "ReplicationController",
        NS,
        "controllers",
    ),
    r("", "resourcequotas", "ResourceQuota", NS, "resourcequotas"),
    r("", "secrets", "Secret", NS, "secrets"),
    r(
        "",
        "serviceaccounts",
        "ServiceAccount",
        NS,
        "serviceaccounts",
    ),
    r("", "services", "Service", NS, "services/specs"),
    // The service IP and node-port allocators: one unnamed object each.
    r("", "rangeallocations", "RangeAllocation", CLUSTER, "ranges"),
    r(
        "admissionregistration.k8s.io",
        "mutatingadmissionpolicies",
        "MutatingAdmissionPolicy",
        CLUSTER,
        "mutatingadmissionpolicies",
    ),
    r(
        "admissionregistration.k8s.io",
        "mutatingadmissionpolicybindings",
        "MutatingAdmissionPolicyBinding",
        CLUSTER,
        "mutatingadmissionpolicybindings",
    ),
    r(
        "admissionregistration.k8s.io",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        CLUSTER,
        "mutatingwebhookconfigurations",
    ),
    r(
        "admissionregistration.k8s.io",
        "validatingadmissionpolicies",
        "ValidatingAdmissionPolicy",
        CLUSTER,
        "validatingadmissionpolicies",
    ),
    r(
        "admissionregistration.k8s.io",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        CLUSTER,
        "validatingadmissionpolicybindings",
    ),
    r(
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        CLUSTER,
        "validatingwebhookconfigurations",
    ),
    r(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        CLUSTER,
        "apiextensions.k8s.io/customresourcedefinitions",
    ),
    r(
        "apiregistration.k8s.io",
        "apiservices",
        "APIService",
        CLUSTER,
        "apiregistration.k8s.io/apiservices",
    ),
    r(
        "apps",
        "controllerrevisions",
        "ControllerRevision",
        NS,
        "controllerrevisions",
    ),
    r("apps", "daemonsets", "DaemonSet", NS, "daemonsets"),
    r("apps", "deployments", "Deployment", NS, "deployments"),
    r("apps", "replicasets", "ReplicaSet", NS, "replicasets"),
    r("apps", "statefulsets", "StatefulSet", NS, "statefulsets"),
    r(
        "autoscaling",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        NS,
        "horizontalpodautoscalers",
    ),
    r("batch", "cronjobs", "CronJob", NS, "cronjobs"),
    r("batch", "jobs", "Job", NS, "jobs"),
    r(
        "certificates.k8s.io",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        CLUSTER,
        "certificatesigningrequests",
    ),
    r(
        "certificates.k8s.io",
        "clustertrustbundles",
        "ClusterTrustBundle",
        CLUSTER,
        "clustertrustbundles",
    ),
    r(
        "certificates.k8s.io",
        "podcertificaterequests",
        "PodCertificateRequest",
        NS,
        "podcertificaterequests",
    ),
    r(
        "coordination.k8s.io",
        "leasecandidates",
        "LeaseCandidate",
        NS,
        "leasecandidates",
    ),
    r("coordination.k8s.io", "leases", "Lease", NS, "leases"),
    r(
        "discovery.k8s.io",
        "endpointslices",
        "EndpointSlice",
        NS,
        "endpointslices",
    ),
    r(
        "flowcontrol.apiserver.k8s.io",
        "flowschemas",
        "FlowSchema",
        CLUSTER,
        "flowschemas",
    ),
    r(
        "flowcontrol.apiserver.k8s.io",
        "prioritylevelconfigurations",
        "PriorityLevelConfiguration",
        CLUSTER,
        "prioritylevelconfigurations",
    ),
    r(
        "internal.apiserver.k8s.io",
        "storageversions",
        "StorageVersion",
        CLUSTER,
        "storageversions",
    ),
    r(
        "lifecycle.k8s.io",
        "evictionrequests",
        "EvictionRequest",
        NS,
        "evictionrequests",
    ),
    r("lifecycle.k8s.io", "evictions", "Eviction", NS, "evictions"),
    r(
        "networking.k8s.io",
        "ingressclasses",
        "IngressClass",
        CLUSTER,
        "ingressclasses",
    ),
    r("networking.k8s.io", "ingresses", "Ingress", NS, "ingress"),
    r(
        "networking.k8s.io",
        "ipaddresses",
        "IPAddress",
        CLUSTER,
        "ipaddresses",
    ),
    r(
        "networking.k8s.io",
        "networkpolicies",
        "NetworkPolicy",
        NS,
        "networkpolicies",
    ),
    r(
        "networking.k8s.io",
        "servicecidrs",
        "ServiceCIDR",
        CLUSTER,
        "servicecidrs",
    ),
    r(
        "node.k8s.io",
        "runtimeclasses",
        "RuntimeClass",
        CLUSTER,
        "runtimeclasses",
    ),
    r(
        "policy",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        NS,
        "poddisruptionbudgets",
    ),
    // Removed in 1.25, still found in older snapshots.
    r(
        "policy",
        "podsecuritypolicies",
        "PodSecurityPolicy",
        CLUSTER,
        "podsecuritypolicy",
    ),
    r(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "ClusterRoleBinding",
        CLUSTER,
        "clusterrolebindings",
    ),
    r(
        "rbac.authorization.k8s.io",
        "clusterroles",
        "ClusterRole",
        CLUSTER,
        "clusterroles",
    ),
    r(
        "rbac.authorization.k8s.io",
        "rolebindings",
        "RoleBinding",
        NS,
        "rolebindings",
    ),
    r("rbac.authorization.k8s.io", "roles", "Role", NS, "roles"),
    r(
        "resource.k8s.io",
        "deviceclasses",
        "DeviceClass",
        CLUSTER,
        "deviceclasses",
    ),
    r(
        "resource.k8s.io",
        "devicetaintrules",
        "DeviceTaintRule",
        CLUSTER,
        "devicetaintrules",
    ),
    r(
        "resource.k8s.io",
        "resourceclaims",
        "ResourceClaim",
        NS,
        "resourceclaims",
    ),
    r(
        "resource.k8s.io",
        "resourceclaimtemplates",
        "ResourceClaimTemplate",
        NS,
        "resourceclaimtemplates",
    ),
    r(
        "resource.k8s.io",
        "resourcepoolstatusrequests",
        "ResourcePoolStatusRequest",
        CLUSTER,
        "resourcepoolstatusrequests",
    ),
    r(
        "resource.k8s.io",
        "resourceslices",
        "ResourceSlice",
        CLUSTER,
        "resourceslices",
    ),
    r(
        "scheduling.k8s.io",
        "compositepodgroups",
        "CompositePodGroup",
        NS,
        "compositepodgroups",
    ),
    r(
        "scheduling.k8s.io",
        "podgroups",
        "PodGroup",
        NS,
        "podgroups",
    ),
    r(
        "scheduling.k8s.io",
        "priorityclasses",
        "PriorityClass",
        CLUSTER,
        "priorityclasses",
    ),
    r(
        "scheduling.k8s.io",
        "workloads",
        "Workload",
        NS,
        "workloads",
    ),
    r(
        "storage.k8s.io",
        "csidrivers",
        "CSIDriver",
        CLUSTER,
        "csidrivers",
    ),
    r("storage.k8s.io", "csinodes", "CSINode", CLUSTER, "csinodes"),
    r(
        "storage.k8s.io",
        "csistoragecapacities",
        "CSIStorageCapacity",
        NS,
        "csistoragecapacities",
    ),
    r(
        "storage.k8s.io",
        "storageclasses",
        "StorageClass",
        CLUSTER,
        "storageclasses",
    ),
    r(
        "storage.k8s.io",
        "volumeattachments",
        "VolumeAttachment",
        CLUSTER,
        "volumeattachments",
    ),
    r(
        "storage.k8s.io",
        "volumeattributesclasses",
        "VolumeAttributesClass",
        CLUSTER,
        "volumeattributesclasses",
    ),
    r(
        "storagemigration.k8s.io",
        "storageversionmigrations",
        "StorageVersionMigration",
        CLUSTER,
        "storageversionmigrations",
    ),
];

/// Groups whose kinds are served under another group but stored once: the
/// storage entry lives under the group on the right.
const GROUP_ALIASES: &[(&str, &str, &str)] = &[
    // (served group, kind, storage group)
    ("events.k8s.io", "Event", ""),
    ("extensions", "Ingress", "networking.k8s.io"),
    ("extensions", "NetworkPolicy", "networking.k8s.io"),
    ("extensions", "DaemonSet", "apps"),
    ("extensions", "Deployment", "apps"),
    ("extensions", "ReplicaSet", "apps"),
    ("extensions", "PodSecurityPolicy", "policy"),
];

/// Kinds of the API that have no storage of their own, and why.
const NOT_STORED: &[(&str, &str, &str)] = &[
    (
        "admission.k8s.io",
        "AdmissionReview",
        "sent to admission webhooks, never stored",
    ),
    (
        "apidiscovery.k8s.io",
        "APIGroupDiscovery",
        "a discovery document computed by the server",
    ),
    (
        "apps",
        "DeploymentRollback",
        "a request body of the removed deployments/rollback subresource",
    ),
    (
        "apps",
        "Scale",
        "the scale subresource, read from and written to the parent object",
    ),
    (
        "autoscaling",
        "Scale",
        "the scale subresource, read from and written to the parent object",
    ),
    (
        "extensions",
        "DeploymentRollback",
        "a request body of the removed deployments/rollback subresource",
    ),
    (
        "extensions",
        "Scale",
        "the scale subresource, read from and written to the parent object",
    ),
    (
        "authentication.k8s.io",
        "SelfSubjectReview",
        "a create-only review answered from the request",
    ),
    (
        "authentication.k8s.io",
        "TokenRequest",
        "the serviceaccounts/token subresource; tokens are not stored",
    ),
    (
        "authentication.k8s.io",
        "TokenReview",
        "a create-only review answered by the authenticator",
    ),
    (
        "authorization.k8s.io",
        "LocalSubjectAccessReview",
        "a create-only review answered by the authorizer",
    ),
    (
        "authorization.k8s.io",
        "SelfSubjectAccessReview",
        "a create-only review answered by the authorizer",
    ),
    (
        "authorization.k8s.io",
        "SelfSubjectRulesReview",
        "a create-only review answered by the authorizer",
    ),
    (
        "authorization.k8s.io",
        "SubjectAccessReview",
        "a create-only review answered by the authorizer",
    ),
    (
        "imagepolicy.k8s.io",
        "ImageReview",
        "sent to image policy webhooks, never stored",
    ),
    (
        "policy",
        "Eviction",
        "the pods/eviction subresource, which deletes the pod",
    ),
    (
        "",
        "Binding",
        "the pods/binding subresource, which sets spec.nodeName on the pod",
    ),
    (
        "",
        "ComponentStatus",
        "computed on each request by probing the components",
    ),
    (
        "",
        "SerializedReference",
        "a legacy annotation payload, not an API resource",
    ),
    ("", "APIGroup", "a discovery document"),
    ("", "APIVersions", "a discovery document"),
    ("", "Status", "a response body"),
    ("", "WatchEvent", "a watch stream frame"),
    ("", "CreateOptions", "request options"),
    ("", "DeleteOptions", "request options"),
    ("", "GetOptions", "request options"),
    ("", "ListOptions", "request options"),
    ("", "PatchOptions", "request options"),
    ("", "UpdateOptions", "request options"),
    (
        "",
        "NodeProxyOptions",
        "request options of a connect subresource",
    ),
    (
        "",
        "PodAttachOptions",
        "request options of a connect subresource",
    ),
    (
        "",
        "PodExecOptions",
        "request options of a connect subresource",
    ),
    (
        "",
        "PodLogOptions",
        "request options of a connect subresource",
    ),
    (
        "",
        "PodPortForwardOptions",
        "request options of a connect subresource",
    ),
    (
        "",
        "PodProxyOptions",
        "request options of a connect subresource",
    ),
    (
        "",
        "ServiceProxyOptions",
        "request options of a connect subresource",
    ),
];

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// The stored resource for a kind, given its apiVersion (`apps/v1`, `v1`, …).
pub fn resource_for_kind(api_version: &str, kind: &str) -> Option<&'static BuiltinResource> {
    let mut group = group_of(api_version);
    if let Some((_, _, g)) = GROUP_ALIASES
        .iter()
        .find(|(sg, k, _)| *sg == group && *k == kind)
    {
        group = g;
    }
    BUILTIN_RESOURCES
        .iter()
        .find(|r| r.group == group && r.kind == kind)
}

/// The resource stored under a key path (`minions`, `services/specs`, `deployments`).
pub fn resource_for_key_path(path: &str) -> Option<&'static BuiltinResource> {
    BUILTIN_RESOURCES.iter().find(|r| r.key_path == path)
}

/// Why a built-in kind is never found in etcd, or None if it may be.
pub fn not_stored_reason(api_version: &str, kind: &str) -> Option<&'static str> {
    let group = group_of(api_version);
    NOT_STORED
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
        .map(|(_, _, why)| *why)
}
