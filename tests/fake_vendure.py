"""A Vendure Admin API stand-in, served over real HTTP by the test that needs it.

It speaks the GraphQL contract the dispatch service uses: addFulfillmentToOrder (a
Fulfillment or an ErrorResult), transitionFulfillmentToState with Vendure's allowed moves,
and order(id){fulfillments}. It can be told to fail, to check retries, and to answer one
creation late, to kill a worker while it waits.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ALLOWED = {"Pending": {"Shipped", "Delivered", "Cancelled"}, "Shipped": {"Delivered", "Cancelled"}}


class FakeVendure:
    def __init__(self, token="admin-token"):
        self.token = token
        self.calls = []
        self.fulfillments = {}
        self.fulfilled_lines = set()
        self.fail_next = 0
        self.fail_status = 503
        self.delay_add_s = 0.0  # delay the answer of the next addFulfillmentToOrder, once
        self.add_received = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/admin-api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def mutations(self, name):
        return [c for c in self.calls if name in c["query"]]

    def _answer(self, body, headers):
        query, variables = body["query"], body.get("variables") or {}
        self.calls.append({"query": query, "variables": variables, "headers": headers})
        if "addFulfillmentToOrder" in query:
            lines = variables["input"]["lines"]
            if any(line["orderLineId"] in self.fulfilled_lines for line in lines):
                return {
                    "addFulfillmentToOrder": {
                        "__typename": "ItemsAlreadyFulfilledError",
                        "errorCode": "ITEMS_ALREADY_FULFILLED_ERROR",
                        "message": "Items already fulfilled",
                    }
                }
            args = {a["name"]: a["value"] for a in variables["input"]["handler"]["arguments"]}
            fid = str(len(self.fulfillments) + 1)
            self.fulfillments[fid] = {"id": fid, "state": "Pending", "trackingCode": args["trackingCode"], "method": args["method"], "lines": lines}
            self.fulfilled_lines.update(line["orderLineId"] for line in lines)
            return {"addFulfillmentToOrder": {"__typename": "Fulfillment", **{k: self.fulfillments[fid][k] for k in ("id", "state", "trackingCode")}}}
        if "transitionFulfillmentToState" in query:
            fulfillment = self.fulfillments.get(variables["id"])
            if fulfillment is None or variables["state"] not in ALLOWED.get(fulfillment["state"], set()):
                return {
                    "transitionFulfillmentToState": {
                        "__typename": "FulfillmentStateTransitionError",
                        "errorCode": "FULFILLMENT_STATE_TRANSITION_ERROR",
                        "message": "Cannot transition",
                    }
                }
            fulfillment["state"] = variables["state"]
            return {"transitionFulfillmentToState": {"__typename": "Fulfillment", "id": fulfillment["id"], "state": fulfillment["state"]}}
        if "fulfillments" in query:
            return {"order": {"id": variables["id"], "fulfillments": [{k: f[k] for k in ("id", "state", "trackingCode")} for f in self.fulfillments.values()]}}
        return None

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if fake.fail_next:
                    fake.fail_next -= 1
                    fake.calls.append({"query": body["query"], "variables": body.get("variables"), "headers": dict(self.headers), "failed": True})
                    return self._send(fake.fail_status, {"message": "down"})
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    # Vendure's ForbiddenError; this shop also echoes the credentials it got,
                    # as a careless or hostile one might: none of it may be recorded.
                    message = f"You are not currently authorized to perform this action (sent: {self.headers.get('Authorization')})"
                    return self._send(200, {"errors": [{"message": message, "extensions": {"code": "FORBIDDEN"}}]})
                answer = fake._answer(body, dict(self.headers))
                if fake.delay_add_s and "addFulfillmentToOrder" in body["query"]:
                    # The fulfillment exists in the shop now; its answer is late to come back.
                    delay_s, fake.delay_add_s = fake.delay_add_s, 0
                    fake.add_received.set()
                    time.sleep(delay_s)
                try:
                    return self._send(200, {"data": answer})
                except OSError:
                    return None  # the caller is gone (a killed worker)

            def _send(self, status, payload):
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        return Handler
