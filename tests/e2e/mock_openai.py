#!/usr/bin/env python3
"""A mock of the OpenAI Responses API for ccmp's end-to-end tier (stdlib only, loopback only).

The real Codex CLI is pointed at it with a `mock` model provider in $CODEX_HOME/config.toml
(`base_url = "http://127.0.0.1:<port>/v1"`, `wire_api = "responses"`). It answers
POST /v1/responses with streaming (SSE) replies scripted by keywords in the latest user message:

  (nothing)      text "MOCK-CODEX: <first line of the prompt> (request <n>)"
  PLEASE-TOOL    first an `exec` custom tool call running `echo tool-ran` through
                 tools.exec_command (how Codex 0.171 runs shell commands), then the text
  PLEASE-SLOW    waits 30 s before answering (for cancel)
  PLEASE-500     an HTTP 500 (server_error)
  PLEASE-400     an HTTP 400 (invalid_request_error)
  PLEASE-LIMIT   an HTTP 429 `usage_limit_reached` resetting in an hour

Every request is appended to the JSON-lines log named by MOCK_LOG: the path, the model, and the
text of each user message. Prints "MOCK listening on http://127.0.0.1:<port>" once it serves.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = os.environ.get("MOCK_LOG")
LOCK = threading.Lock()
COUNT = [0]


def user_texts(body):
    texts = []
    for item in body.get("input", []):
        if isinstance(item, dict) and item.get("role") == "user":
            for part in item.get("content", []):
                if isinstance(part, dict) and part.get("type") in ("input_text", "text"):
                    texts.append(part.get("text", ""))
    return texts


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(200, json.dumps({"object": "list", "data": [], "models": []}).encode())

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            body = {}
        texts = user_texts(body)
        last = texts[-1] if texts else ""
        with LOCK:
            COUNT[0] += 1
            n = COUNT[0]
            if LOG:
                with open(LOG, "a") as log:
                    log.write(json.dumps({"path": self.path, "model": body.get("model"), "users": texts}) + "\n")
        error = None
        if "PLEASE-500" in last:
            error = (500, {"message": "The server had an error while processing your request.", "type": "server_error", "code": None})
        elif "PLEASE-400" in last:
            error = (400, {"message": "Invalid model: nope", "type": "invalid_request_error", "code": "model_not_found"})
        elif "PLEASE-LIMIT" in last:
            error = (429, {"message": "You exceeded your current quota.", "type": "usage_limit_reached", "code": "usage_limit_reached",
                           "resets_at": int(time.time()) + 3600, "plan_type": "plus"})
        if error:
            self.reply(error[0], json.dumps({"error": error[1]}).encode())
            return
        answered = any(isinstance(i, dict) and i.get("type") == "custom_tool_call_output" for i in body.get("input", []))
        if "PLEASE-TOOL" in last and not answered:
            call = {"id": f"ctc_{n}", "type": "custom_tool_call", "status": "completed", "call_id": f"call_{n}", "name": "exec",
                    "input": "const r = await tools.exec_command({cmd: 'echo tool-ran'});\ntext(r);"}
            usage = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 5,
                     "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 105}
            events = [
                {"type": "response.created", "response": {"id": f"resp_{n}", "object": "response", "status": "in_progress", "output": []}},
                {"type": "response.output_item.added", "output_index": 0, "item": dict(call, status="in_progress", input="")},
                {"type": "response.output_item.done", "output_index": 0, "item": call},
                {"type": "response.completed", "response": {"id": f"resp_{n}", "object": "response", "status": "completed", "output": [], "usage": usage}},
            ]
            payload = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
            self.reply(200, payload, "text/event-stream")
            return
        if "PLEASE-SLOW" in last:
            time.sleep(30)
        first = last.strip().splitlines()[0] if last.strip() else ""
        text = f"MOCK-CODEX: {first} (request {n})"
        events = [
            {"type": "response.created", "response": {"id": f"resp_{n}", "object": "response", "status": "in_progress", "output": []}},
            {"type": "response.output_item.added", "output_index": 0,
             "item": {"id": f"msg_{n}", "type": "message", "role": "assistant", "status": "in_progress", "content": []}},
            {"type": "response.output_text.delta", "item_id": f"msg_{n}", "output_index": 0, "content_index": 0, "delta": text},
            {"type": "response.output_item.done", "output_index": 0,
             "item": {"id": f"msg_{n}", "type": "message", "role": "assistant", "status": "completed",
                      "content": [{"type": "output_text", "text": text, "annotations": []}]}},
            {"type": "response.completed", "response": {"id": f"resp_{n}", "object": "response", "status": "completed", "output": [],
                                                        "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 0},
                                                                  "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0},
                                                                  "total_tokens": 105}}},
        ]
        payload = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()
        self.reply(200, payload, "text/event-stream")


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
    print(f"MOCK listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
