#!/usr/bin/env python3
"""A mock of the Gemini API for ccmp's end-to-end tier (stdlib only, loopback only).

The real Gemini CLI is pointed at it with GOOGLE_GEMINI_BASE_URL (and GEMINI_API_KEY, with
`security.auth.selectedType = "gemini-api-key"` in its settings). It answers
POST /v1beta/models/<model>:streamGenerateContent?alt=sse with replies scripted by keywords in
the conversation:

  (nothing)      text "MOCK-GEMINI: <first line of the latest user text> (request <n>)"
  PLEASE-TOOL    a run_shell_command call of `echo tool-ran` first, then the text
  PLEASE-SLOW    waits 30 s before answering (for cancel)
  PLEASE-400     an HTTP 400 (INVALID_ARGUMENT)

Every request is appended to the JSON-lines log named by MOCK_LOG: the path and the texts of the
user turns. Prints "MOCK listening on http://127.0.0.1:<port>" once it serves.
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
    for content in body.get("contents", []):
        if content.get("role") == "user":
            for part in content.get("parts", []):
                if "text" in part:
                    texts.append(part["text"])
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
        self.reply(200, b"{}")

    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            body = {}
        texts = user_texts(body)
        everything = json.dumps(body.get("contents", []))
        last = texts[-1] if texts else ""
        with LOCK:
            COUNT[0] += 1
            n = COUNT[0]
            if LOG:
                with open(LOG, "a") as log:
                    log.write(json.dumps({"path": self.path, "users": texts}) + "\n")
        if "PLEASE-400" in last:
            error = {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT"}
            self.reply(400, json.dumps({"error": error}).encode())
            return
        if "PLEASE-SLOW" in last:
            time.sleep(30)
        if "PLEASE-TOOL" in everything and "functionResponse" not in everything:
            parts = [{"functionCall": {"name": "run_shell_command", "args": {"command": "echo tool-ran", "description": "say it"}}}]
        else:
            first = last.strip().splitlines()[-1] if last.strip() else ""
            parts = [{"text": f"MOCK-GEMINI: {first} (request {n})"}]
        chunk = {
            "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 100, "candidatesTokenCount": 5, "totalTokenCount": 105},
            "modelVersion": "gemini-mock",
        }
        if "stream" in self.path:
            self.reply(200, ("data: " + json.dumps(chunk) + "\r\n\r\n").encode(), "text/event-stream")
        else:
            self.reply(200, json.dumps(chunk).encode())


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), Handler)
    print(f"MOCK listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
