"""An HTTP endpoint for outgoing webhooks (Slack, signed webhook, PagerDuty), served over real
HTTP by the test that needs it. It records what it gets and can answer with an error or hang."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HookReceiver:
    def __init__(self):
        self.requests = []
        self.fail_next = 0
        self.fail_status = 500
        self.hang_next = 0
        self.hang_s = 2.0
        self.hanging = threading.Event()  # set once a request is being held
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def bodies(self):
        return [json.loads(r["body"]) for r in self.requests]

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if receiver.hang_next:
                    receiver.hang_next -= 1
                    receiver.hanging.set()
                    time.sleep(receiver.hang_s)
                    return
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    self.send_response(receiver.fail_status)
                    self.end_headers()
                    return
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status": "success"}')

            def log_message(self, *args):
                pass

        return Handler
