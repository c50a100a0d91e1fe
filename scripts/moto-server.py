"""moto's server with four corrections that make it answer as AWS STS does,
for scripts/moto.sh. Run with the moto venv's python; arguments are
moto_server's.

1. AssumeRoleWithWebIdentity is an unsigned call on AWS (the web identity
   token is the proof). moto finds the service of an unsigned call in its
   body only, so one with its parameters in the query string (as
   object_store sends it) went to S3; and once moto checks credentials it
   refuses any unsigned request (a 500 on the missing header). Both are
   answered here as AWS answers them.
2. moto checks a signature against the query string as werkzeug decoded
   it (prefix=a/b), not as sent (prefix=a%2Fb), so any signed request with
   an escaped character in its query (every listing under a prefix) failed
   with SignatureDoesNotMatch, boto3's too. The check is given the query
   as sent.
3. A bucket with Object Lock default retention refuses uploads without a
   checksum. AWS takes Content-MD5 or any x-amz-checksum-* header; moto
   only Content-MD5 or x-amz-sdk-checksum-algorithm. The algorithm header
   is added here where a checksum header is present (moto's own check of
   the checksum is unchanged).
4. HOKAN_MOTO_STS_DURATION_SECONDS, when set, caps the lifetime of the
   credentials STS hands out. object_store asks for an hour and refreshes
   five minutes before the end; a cap just above five minutes makes it
   refresh within seconds, so a test can watch a backup outlive its first
   credentials.
"""

import os
import sys
import urllib.parse

from moto.core.authorization import ActionAuthenticatorMixin
from moto.sts.models import STSBackend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main

_body = DomainDispatcherApplication._get_body


def _body_or_query(self, environ):
    return _body(self, environ) or environ.get("QUERY_STRING") or None


DomainDispatcherApplication._get_body = _body_or_query

_call = DomainDispatcherApplication.__call__


def _call_with_checksum_algorithm(self, environ, start_response):
    if "HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM" not in environ:
        for key in list(environ):
            if key.startswith("HTTP_X_AMZ_CHECKSUM_") and key != "HTTP_X_AMZ_CHECKSUM_MODE":
                environ["HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM"] = key[len("HTTP_X_AMZ_CHECKSUM_") :]
                break
    return _call(self, environ, start_response)


DomainDispatcherApplication.__call__ = _call_with_checksum_algorithm

_check = ActionAuthenticatorMixin._authenticate_and_authorize_action


def _check_unless_web_identity(self, *args, **kwargs):
    if self._get_action() == "AssumeRoleWithWebIdentity":
        return None
    environ = getattr(getattr(self, "request", None), "environ", None) or {}
    raw = environ.get("QUERY_STRING")
    if not raw:
        return _check(self, *args, **kwargs)
    decoded = self.uri
    self.uri = urllib.parse.urlsplit(decoded)._replace(query=raw).geturl()
    try:
        return _check(self, *args, **kwargs)
    finally:
        self.uri = decoded


ActionAuthenticatorMixin._authenticate_and_authorize_action = _check_unless_web_identity

_cap = os.environ.get("HOKAN_MOTO_STS_DURATION_SECONDS")
if _cap:
    _assume = STSBackend.assume_role

    def _assume_capped(self, *args, **kwargs):
        kwargs["duration"] = min(int(kwargs["duration"]), int(_cap))
        return _assume(self, *args, **kwargs)

    STSBackend.assume_role = _assume_capped

if __name__ == "__main__":
    sys.exit(main())
