"""A loopback HTTP proxy in front of the test node, for fault injection: it forwards every
request and, at a chosen request (method, path pattern, optionally a text in the body, the
n-th such request), acts:

- ``kill``: the node has carried the request out and answered, then the proxy kills a
  process (SIGKILL) before the answer reaches it: "killed right after this step took
  effect";
- ``drop``: the connection is closed without an answer (after forwarding, or before with
  ``forward=False``);
- ``status``: the request is not forwarded; the proxy answers with that HTTP status
  (429, 503, ...) and an OpenSearch-style error body.

Used as ``with FaultProxy(search_url) as proxy: proxy.arm(...); run the job against
proxy.url``. It only ever signals the PID the test gives it (a process the test started).
"""

import http.client
import http.server
import json
import os
import re
import signal
import threading
import urllib.parse


class FaultProxy:
    """See the module documentation."""

    def __init__(self, target_url):
        target = urllib.parse.urlsplit(target_url)
        self.target = (target.hostname, target.port)
        self.requests = []  # (method, path) of every request seen, in order
        self.encodings = []  # (Accept-Encoding asked, Content-Encoding of the reply) of each
        self.fired = threading.Event()
        self._lock = threading.Lock()
        self._rule = None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action = proxy._match(self.command, self.path, body)
                if action and action["do"] == "status":
                    reply = json.dumps(
                        {
                            "error": {"type": "fault_injection", "reason": "injected by the test proxy"},
                            "status": action["status"],
                        }
                    ).encode()
                    self.send_response(action["status"])
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                    return
                if action and action["do"] == "drop" and not action["forward"]:
                    self.close_connection = True
                    return
                status, headers, payload = proxy._forward(self.command, self.path, self.headers, body)
                with proxy._lock:
                    proxy.encodings.append(
                        (
                            self.headers.get("Accept-Encoding"),
                            next((v for k, v in headers if k.lower() == "content-encoding"), None),
                        )
                    )
                if action and action["do"] == "kill":
                    os.kill(action["pid"], signal.SIGKILL)
                    proxy.fired.set()
                    self.close_connection = True
                    return
                if action and action["do"] == "drop":
                    proxy.fired.set()
                    self.close_connection = True
                    return
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def arm(self, method, path, *, nth=1, body_contains=None, do="kill", pid=None, status=503, forward=True):
        """Acts on the ``nth`` request whose method is ``method`` and whose path matches the
        regular expression ``path`` (and whose body holds ``body_contains``)."""
        assert do != "kill" or pid, "kill needs the PID of a process the test started"
        with self._lock:
            self.fired.clear()
            self._rule = {
                "method": method,
                "path": re.compile(path),
                "nth": nth,
                "seen": 0,
                "body": body_contains.encode() if body_contains else None,
                "do": do,
                "pid": pid,
                "status": status,
                "forward": forward,
            }

    def _match(self, method, path, body):
        with self._lock:
            self.requests.append((method, path))
            rule = self._rule
            if not rule or rule["method"] != method or not rule["path"].search(path):
                return None
            if rule["body"] is not None and rule["body"] not in body:
                return None
            rule["seen"] += 1
            if rule["seen"] != rule["nth"]:
                return None
            self._rule = None  # once
            if rule["do"] == "status":
                self.fired.set()
            return rule

    def _forward(self, method, path, headers, body):
        conn = http.client.HTTPConnection(*self.target, timeout=120)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in ("host", "connection")}
            conn.request(method, path, body=body or None, headers=forwarded)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()
