"""A pass-through proxy in front of fake-gcs-server for scripts/gcs-emulator.sh.

object_store writes GCS objects with the XML API's plain `PUT /bucket/object`
(as Google's servers take it). Upstream fake-gcs-server answers that only
for signed URLs (it wants an `X-Goog-Algorithm` query parameter) and then
leaves out the ETag header Google sends, which object_store requires.
(object_store's own CI runs a fork of fake-gcs-server that has this.)
This proxy adds the parameter to such PUTs and the ETag and generation
headers to their answers. For a bucket that does not exist the emulator
answers a listing with HTTP 500 ("lstat ...: no such file or directory");
Google answers 404 NoSuchBucket, and so does this proxy. Every other
request and answer passes unchanged, and the emulator itself stores and
serves everything.

Usage: gcs-xml-put.py LISTEN_PORT UPSTREAM_PORT
"""

import http.client
import http.server
import json
import sys
import threading
import urllib.parse

LISTEN, UPSTREAM = int(sys.argv[1]), int(sys.argv[2])
local = threading.local()

# Headers that belong to one hop, not to the request.
HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}


def upstream():
    if getattr(local, "conn", None) is None:
        local.conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=120)
    return local.conn


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        plain_put = (
            self.command == "PUT"
            and url.path.count("/") >= 2
            and not url.path.startswith(("/storage/", "/upload/", "/download/"))
            and "uploadType" not in query
            and not any(k.startswith("X-Goog-") for k in query)
        )
        path = self.path
        if plain_put:
            path += ("&" if url.query else "?") + "X-Goog-Algorithm=GOOG4-RSA-SHA256"
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        for attempt in (1, 2):
            conn = upstream()
            try:
                conn.request(self.command, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError):
                # A kept-alive connection the emulator closed: reconnect once.
                conn.close()
                local.conn = None
                if attempt == 2:
                    self.send_error(502, "fake-gcs-server is not answering")
                    return
        out = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP | {"content-length"}]
        if plain_put and resp.status == 200 and not resp.getheader("ETag"):
            meta = json.loads(data)
            out.append(("ETag", '"%s"' % meta["etag"]))
            out.append(("X-Goog-Generation", str(meta["generation"])))
        status, reason = resp.status, resp.reason
        if status == 500 and b"no such file or directory" in data:
            bucket = url.path.strip("/").split("/")[0]
            conn = upstream()
            conn.request("GET", "/storage/v1/b/" + bucket)
            probe = conn.getresponse()
            probe.read()
            if probe.status == 404:
                status, reason = 404, "Not Found"
                out = [("Content-Type", "application/xml")]
                data = (
                    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>NoSuchBucket</Code>"
                    b"<Message>The specified bucket does not exist.</Message></Error>"
                )
        self.send_response(status, reason)
        for k, v in out:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = forward


http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy).serve_forever()
