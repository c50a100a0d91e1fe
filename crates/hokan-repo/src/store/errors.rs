//! What a remote store's failure means, in words a user can act on: which
//! store, which bucket or container, what went wrong, and what fixes it.
//!
//! object_store maps HTTP statuses to a few kinds (not found, permission
//! denied, unauthenticated, generic) and keeps the server's answer as the
//! error's source; the answer's error code (`NoSuchBucket`,
//! `ContainerNotFound`, `ExpiredToken`, ...) tells the cases apart. Where a
//! server gives no body (HEAD requests, some emulators), the operation
//! itself tells: a write or a listing that finds nothing means the bucket
//! is missing, since neither can miss an object.

use crate::error::Error;
use crate::store::Location;

/// What hokan asked the store to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Get,
    Head,
    Put,
    Delete,
    List,
}

impl Op {
    fn verb(self) -> &'static str {
        match self {
            Op::Get | Op::Head => "read",
            Op::Put => "write",
            Op::Delete => "delete",
            Op::List => "list",
        }
    }

    /// The permission the operation needs, as each service names it.
    fn permission(self, service: Service) -> &'static str {
        match (service, self) {
            (Service::S3, Op::Get | Op::Head) => "s3:GetObject",
            (Service::S3, Op::Put) => "s3:PutObject",
            (Service::S3, Op::Delete) => "s3:DeleteObject",
            (Service::S3, Op::List) => "s3:ListBucket",
            (Service::Azure, Op::Get | Op::Head) => "read (r)",
            (Service::Azure, Op::Put) => "create and write (c, w)",
            (Service::Azure, Op::Delete) => "delete (d)",
            (Service::Azure, Op::List) => "list (l)",
            (Service::Gcs, Op::Get | Op::Head) => "storage.objects.get",
            (Service::Gcs, Op::Put) => "storage.objects.create",
            (Service::Gcs, Op::Delete) => "storage.objects.delete",
            (Service::Gcs, Op::List) => "storage.objects.list",
            (Service::Other, _) => "the permission for it",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    S3,
    Azure,
    Gcs,
    Other,
}

/// The store a location names, for messages.
struct Named<'a> {
    service: Service,
    /// "the S3 bucket \"b\"", "the Azure Blob Storage container \"c\"".
    bucket: String,
    location: &'a Location,
}

impl<'a> Named<'a> {
    fn of(location: &'a Location) -> Self {
        let (service, bucket) = match location {
            Location::S3 {
                endpoint, bucket, ..
            } => {
                let at = endpoint
                    .clone()
                    .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                    .map(|e| format!(" at {e}"))
                    .unwrap_or_default();
                (Service::S3, format!("the S3 bucket {bucket:?}{at}"))
            }
            Location::Azure { container, .. } => {
                let account = std::env::var("AZURE_STORAGE_ACCOUNT_NAME")
                    .map(|a| format!(" of storage account {a:?}"))
                    .unwrap_or_default();
                (
                    Service::Azure,
                    format!("the Azure Blob Storage container {container:?}{account}"),
                )
            }
            Location::Gcs { bucket, .. } => (
                Service::Gcs,
                format!("the Google Cloud Storage bucket {bucket:?}"),
            ),
            _ => (Service::Other, format!("the store {location}")),
        };
        Named {
            service,
            bucket,
            location,
        }
    }

    fn create_it(&self) -> String {
        match self.location {
            Location::S3 { bucket, .. } => format!(
                "create it (`aws s3 mb s3://{bucket}`, with --endpoint-url for an S3-compatible \
                 server) or correct the bucket name, endpoint and region"
            ),
            Location::Azure { container, .. } => format!(
                "create it (`az storage container create --name {container}`) or correct the \
                 container name and AZURE_STORAGE_ACCOUNT_NAME"
            ),
            Location::Gcs { bucket, .. } => format!(
                "create it (`gcloud storage buckets create gs://{bucket}`) or correct the bucket name"
            ),
            _ => "correct the location".into(),
        }
    }

    fn credentials(&self) -> &'static str {
        match self.service {
            Service::S3 => {
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary \
                 credentials), or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN"
            }
            Service::Azure => {
                "AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY or the service principal in \
                 AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/AZURE_TENANT_ID"
            }
            Service::Gcs => {
                "the service account in GOOGLE_SERVICE_ACCOUNT or GOOGLE_APPLICATION_CREDENTIALS"
            }
            Service::Other => "the store's credentials",
        }
    }

    fn no_bucket(&self) -> Error {
        Error::NoBucket {
            location: self.location.to_string(),
            what: self.bucket.clone(),
            fix: self.create_it(),
        }
    }

    fn denied(&self, what: String, answer: &str) -> Error {
        Error::Denied {
            location: self.location.to_string(),
            detail: format!("{what} (the store answered: {})", shorten(answer)),
        }
    }
}

/// What a failure means for the caller.
pub(super) enum Classified {
    /// The object is not there.
    NotFound,
    /// Worth another try.
    Transient(Error),
    /// Retrying will not help.
    Permanent(Error),
}

/// Classifies a failure of `op` on `path` in the store at `location`.
pub(super) fn classify(
    location: &Location,
    op: Op,
    path: &str,
    e: object_store::Error,
) -> Classified {
    use object_store::Error as E;
    let named = Named::of(location);
    let detail = chain(&e);
    let lower = detail.to_ascii_lowercase();
    let code = |c: &str| detail.contains(c);

    // A bucket or container that does not exist, whatever the status.
    if code("NoSuchBucket")
        || code("ContainerNotFound")
        || lower.contains("bucket does not exist")
        || (matches!(e, E::NotFound { .. }) && matches!(op, Op::Put | Op::List))
    {
        return Classified::Permanent(named.no_bucket());
    }
    if let E::NotFound { .. } = e {
        return Classified::NotFound;
    }

    let what = format!("{} {path}", op.verb());
    // Temporary credentials past their end.
    if code("ExpiredToken")
        || code("TokenRefreshRequired")
        || code("RequestExpired")
        || lower.contains("token has expired")
        || lower.contains("signature not valid in the specified time frame")
        || lower.contains("signed expiry time")
    {
        return Classified::Permanent(named.denied(
            format!(
                "the credentials have expired ({what} in {}); renew them: {}",
                named.bucket,
                named.credentials()
            ),
            &detail,
        ));
    }
    // The bucket lives in another region than the requests were signed for.
    if code("AuthorizationHeaderMalformed")
        || code("PermanentRedirect")
        || code("IllegalLocationConstraintException")
        || lower.contains("incorrectly configured region")
    {
        let expecting = region_expected(&detail)
            .map(|r| format!("set AWS_REGION={r}"))
            .unwrap_or_else(|| "set AWS_REGION to the bucket's region".into());
        return Classified::Permanent(named.denied(
            format!(
                "{} is in another region than the requests were signed for ({what}); {expecting}",
                named.bucket
            ),
            &detail,
        ));
    }
    // Credentials the store does not know or whose signature does not match.
    if code("InvalidAccessKeyId")
        || code("SignatureDoesNotMatch")
        || code("InvalidClientTokenId")
        || code("InvalidToken")
        || code("AuthenticationFailed")
        || code("AuthorizationFailure")
        || code("InvalidAuthenticationInfo")
        || matches!(e, E::Unauthenticated { .. })
        || has_status(&lower, "401")
    {
        let hint = if named.service == Service::Azure {
            "they are wrong, or a shared access signature has expired or is not yet valid"
        } else {
            "they are wrong or unknown to it"
        };
        return Classified::Permanent(named.denied(
            format!(
                "the credentials were refused for {} ({what}): {hint}; check {}",
                named.bucket,
                named.credentials()
            ),
            &detail,
        ));
    }
    // Known credentials without the permission this operation needs.
    if matches!(e, E::PermissionDenied { .. })
        || code("AccessDenied")
        || code("AuthorizationPermissionMismatch")
        || code("AuthorizationResourceTypeMismatch")
        || has_status(&lower, "403")
        || lower.contains("forbidden")
        || lower.contains("access denied")
    {
        return Classified::Permanent(named.denied(
            format!(
                "the credentials may not {} in {} ({what}); grant them {} there",
                op.verb(),
                named.bucket,
                op.permission(named.service)
            ),
            &detail,
        ));
    }
    let location = location.to_string();
    match e {
        E::Generic { .. } | E::JoinError { .. } => {
            if lower.contains("no space left")
                || lower.contains("quota")
                || lower.contains("entitytoolarge")
            {
                Classified::Permanent(Error::Full {
                    location,
                    detail: format!("{path}: {detail}"),
                })
            } else if lower.contains("read-only file system") {
                Classified::Permanent(Error::Storage {
                    location,
                    detail: format!("{path}: the store is read-only ({detail})"),
                })
            } else if lower.contains("permission denied") {
                Classified::Permanent(named.denied(
                    format!("{what}: permission denied; check {}", named.credentials()),
                    &detail,
                ))
            } else {
                Classified::Transient(Error::Unreachable {
                    location,
                    detail: format!("{path}: {detail}"),
                })
            }
        }
        _ => Classified::Permanent(Error::Storage {
            location,
            detail: format!("{path}: {detail}"),
        }),
    }
}

/// The region an S3 answer says the bucket is in ("expecting 'eu-west-1'",
/// `<Region>eu-west-1</Region>`).
fn region_expected(answer: &str) -> Option<String> {
    let after = |marker: &str, end: char| -> Option<String> {
        let start = answer.find(marker)? + marker.len();
        let rest = &answer[start..];
        let r: String = rest.chars().take_while(|&c| c != end).collect();
        (!r.is_empty() && r.len() < 40).then_some(r)
    };
    after("expecting '", '\'').or_else(|| after("<Region>", '<'))
}

/// The first part of a long server answer (an HTML error page, say).
fn shorten(answer: &str) -> String {
    let flat: String = answer.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= 600 {
        return flat;
    }
    let cut: String = flat.chars().take(600).collect();
    format!("{cut}…")
}

/// Whether an HTTP status code stands in `text` as a number of its own:
/// "status 403", "403 Forbidden", not the digits of "244.334031ms".
fn has_status(text: &str, code: &str) -> bool {
    let b = text.as_bytes();
    let number_char = |c: u8| c.is_ascii_alphanumeric() || c == b'.';
    text.match_indices(code).any(|(i, _)| {
        let end = i + code.len();
        (i == 0 || !number_char(b[i - 1])) && (end == b.len() || !number_char(b[end]))
    })
}

/// An error and its sources, joined, for messages.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(body: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: body.to_string().into(),
        }
    }

    fn s3() -> Location {
        Location::parse("s3:https://s3.example.invalid/backups/cluster-a").unwrap()
    }

    fn message(c: Classified) -> String {
        match c {
            Classified::Permanent(e) | Classified::Transient(e) => e.to_string(),
            Classified::NotFound => "not found".into(),
        }
    }

    #[test]
    fn status_codes_are_whole_numbers() {
        // A refused connection whose timing holds the digits 4, 0, 3 is not
        // a denial (this misreport once reached CI).
        let refused = "error performing get http://127.0.0.1:9/bucket/repo/config in 244.334031ms, after 2 retries - http error: tcp connect error: connection refused (os error 111)";
        assert!(!has_status(refused, "403") && !has_status(refused, "401"));
        assert!(has_status(
            "client error with status 403 forbidden: <error>",
            "403"
        ));
        assert!(has_status("status: 401", "401"));
        assert!(has_status("403", "403"));
        assert!(!has_status("port 14030", "403"));
        assert!(!has_status("v1.403", "403"));
    }

    // No emulator here answers these two as AWS does (Garage and moto
    // accept any signing region; moto never expires a session token), so
    // AWS's documented answers stand in for them.
    #[test]
    fn aws_region_mismatch_names_the_region() {
        let answer = "Server returned non-2xx status code: 400 Bad Request: <Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>";
        let m = message(classify(&s3(), Op::Get, "config", generic(answer)));
        assert!(m.contains("another region"), "{m}");
        assert!(m.contains("AWS_REGION=eu-west-1"), "{m}");
        assert!(m.contains("\"backups\""), "{m}");
        let bare = "Received redirect without LOCATION, this normally indicates an incorrectly configured region";
        let m = message(classify(&s3(), Op::List, "keys", generic(bare)));
        assert!(m.contains("AWS_REGION to the bucket's region"), "{m}");
    }

    #[test]
    fn aws_expired_token() {
        let answer = "Server returned non-2xx status code: 400 Bad Request: <Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>";
        let m = message(classify(&s3(), Op::Put, "data/ab/cd", generic(answer)));
        assert!(m.contains("have expired"), "{m}");
        assert!(m.contains("AWS_WEB_IDENTITY_TOKEN_FILE"), "{m}");
    }
}
