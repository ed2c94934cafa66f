"""A loopback HTTPS server for MTA-STS policies (RFC 8461 3.3): Python's
http.server with ssl, answering GET /.well-known/mta-sts.txt per Host
header from a table the test changes at will.

    srv = PolicyServer("127.0.0.20", port, cert_chain, key).start()
    srv.set("mta-sts.example.test", "version: STSv1\\n...")     # 200 text/plain
    srv.set("mta-sts.other.test", "x", status=302, headers={"Location": "https://..."})
    ... srv.requests (list of (host, path)) ...
    srv.stop()
"""
import http.server
import ssl
import threading


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server.policy
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        with srv.lock:
            srv.requests.append((host, self.path))
            entry = srv.table.get(host)
        if entry is None or self.path != "/.well-known/mta-sts.txt":
            entry = ("not found\n", 404, "text/plain", {})
        body, status, ctype, headers = entry
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


class PolicyServer:
    def __init__(self, host, port, chain, key):
        if not host.startswith("127."):
            raise ValueError("loopback only")
        self.table = {}
        self.requests = []
        self.lock = threading.Lock()
        self.httpd = http.server.ThreadingHTTPServer((host, port), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.policy = self
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = None

    def set(self, host, body, status=200, ctype="text/plain", headers=None):
        with self.lock:
            self.table[host.lower()] = (body, status, ctype, headers or {})

    def fetches(self, host):
        with self.lock:
            return sum(1 for h, _ in self.requests if h == host.lower())

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.thread.join(10)
        self.httpd.server_close()
