#!/usr/bin/env python3
"""A mock of the Anthropic Messages API for ccmp's end-to-end tier (stdlib only, loopback only).

The real Claude Code CLI is pointed at it with ANTHROPIC_BASE_URL. It answers
POST /v1/messages?beta=true with streaming (SSE) replies scripted by keywords in the latest user
prompt of the conversation:

  (nothing)                  text "MOCK-OK: <first line of the prompt>"
  PLEASE-WRITE <abs path>    a Write tool_use for that file, then text "WROTE-FILE. tool said: ..."
  PLEASE-SLOW                pings for 30 s before answering (for cancel and timeout)
  PLEASE-529 / PLEASE-500    an HTTP 529 (overloaded) / 500 (api_error) error
  PLEASE-529-TIMES=<n>       (in any prompt of the conversation) a 529 for the first n such
                             requests, then answers as usual
  PLEASE-USAGE-LIMIT=<secs>  (in any prompt of the conversation) the account's 5-hour usage
                             limit is reached until <secs> after the first such request: a 429
                             with the anthropic-ratelimit-unified-* headers of a real refusal
                             (see claude-limits-defer-channels.md), then answers as usual
  PLEASE-BASH <command>      a Bash tool_use of the rest of the line, then text
                             "BASH-SAID: <tool result>"
  PLEASE-BASH2 <a> ;; <b>    two Bash tool_uses in one message; a call refused because
                             another waits for approval is asked again, alone, next turn;
                             then text "BASH-SAID: <tool results>"
  PLEASE-CCMP                calls mcp__ccmp__start_cc_task_async, then mcp__ccmp__wait_for_tasks
                             with the id it got back, then answers with what the wait said
  PLEASE-EXEC                calls mcp__ccmp__execute_cc_task (a fake agent that takes 2 s), then
                             answers with what it said

Every request is appended to the JSON-lines log named by MOCK_LOG: the number of messages, the
model, the prompt, the scenario step, and the tool results the CLI sent back.

Prints "MOCK listening on http://127.0.0.1:<port>" on stdout once it serves.
"""

import json
import os
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = os.environ.get("MOCK_LOG")
LOG_LOCK = threading.Lock()
COUNT = [0]
STATE_LOCK = threading.Lock()
RESET_AT = [None]
FAILED_529 = [0]


def log(entry):
    if not LOG:
        return
    with LOG_LOCK:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")


def text_of(content):
    """The text blocks of a message content (a string or a list of blocks)."""
    if isinstance(content, str):
        return [content]
    return [b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"]


def tool_results(content):
    out = []
    if isinstance(content, list):
        for b in content:
            if isinstance(b, dict) and b.get("type") == "tool_result":
                c = b.get("content")
                if isinstance(c, list):
                    c = "".join(x.get("text", "") for x in c if isinstance(x, dict))
                out.append(str(c))
    return out


def all_tool_results(body):
    return [r for m in body.get("messages", []) if m.get("role") == "user" for r in tool_results(m.get("content", ""))]


def waiting_commands(body):
    """Commands of the latest tool results that were refused because another call waits for
    approval (ccmp's hook says so), found through the tool_use ids of earlier messages."""
    messages = body.get("messages", [])
    inputs = {}
    for m in messages:
        if m.get("role") == "assistant" and isinstance(m.get("content"), list):
            for b in m["content"]:
                if isinstance(b, dict) and b.get("type") == "tool_use":
                    inputs[b.get("id")] = (b.get("input") or {}).get("command")
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    out = []
    for b in last.get("content", []) if isinstance(last.get("content"), list) else []:
        if isinstance(b, dict) and b.get("type") == "tool_result":
            c = b.get("content")
            if isinstance(c, list):
                c = "".join(x.get("text", "") for x in c if isinstance(x, dict))
            if "waiting for a person's approval" in str(c) and inputs.get(b.get("tool_use_id")):
                out.append(inputs[b.get("tool_use_id")])
    return out


def conversation(body):
    """(latest prompt, assistant turns since it, tool results since it, all prompts)."""
    messages = [m for m in body.get("messages", []) if m.get("role") in ("user", "assistant")]
    prompts = []
    last_prompt_index = 0
    for i, m in enumerate(messages):
        if m["role"] == "user":
            texts = [t for t in text_of(m.get("content", "")) if not t.lstrip().startswith("<system-reminder>")]
            if texts and not tool_results(m.get("content", "")):
                prompts.append(texts[-1])
                last_prompt_index = i
    rest = messages[last_prompt_index + 1 :]
    steps = sum(1 for m in rest if m["role"] == "assistant")
    results = [r for m in rest if m["role"] == "user" for r in tool_results(m.get("content", ""))]
    return (prompts[-1] if prompts else ""), steps, results, prompts


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.do_HEAD()

    def reply_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if "count_tokens" in self.path:
            return self.reply_json(200, {"input_tokens": 100})
        COUNT[0] += 1
        prompt, step, results, prompts = conversation(body)
        entry = {
            "n": COUNT[0],
            "path": self.path,
            "model": body.get("model"),
            "stream": body.get("stream"),
            "msgs": len(body.get("messages", [])),
            "prompt": prompt,
            "prompts": prompts,
            "step": step,
            "tool_results": results,
            # The last user message's text, notifications and reminders included (cut).
            "last_user_text": "\n".join(
                text_of(next((m.get("content", "") for m in reversed(body.get("messages", []))
                              if m.get("role") == "user"), ""))
            )[-4000:],
            # What the model is given of each tool: its definition, as the CLI sent it.
            "tools": [{"name": t.get("name"), "bytes": len(json.dumps(t, separators=(",", ":"))),
                       "defer_loading": t.get("defer_loading")} for t in body.get("tools", [])],
        }
        # Every user text of the conversation: a resumed session may carry a refused turn's
        # prompt in the same message as the next one.
        everything = "\n".join(t for m in body.get("messages", []) if m.get("role") == "user"
                                for t in text_of(m.get("content", "")))
        limit = re.search(r"PLEASE-USAGE-LIMIT=(\d+)", everything)
        if limit:
            with STATE_LOCK:
                if RESET_AT[0] is None:
                    RESET_AT[0] = int(time.time()) + int(limit.group(1))
                reset_at = RESET_AT[0]
            if time.time() < reset_at:
                entry["status"] = 429
                log(entry)
                return self.usage_limit(reset_at)
        times = re.search(r"PLEASE-529-TIMES=(\d+)", everything)
        if times:
            with STATE_LOCK:
                fail = FAILED_529[0] < int(times.group(1))
                if fail:
                    FAILED_529[0] += 1
            if fail:
                entry["status"] = 529
                log(entry)
                return self.reply_json(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
        for code in ("529", "500"):
            if "PLEASE-" + code in prompt and "PLEASE-529-TIMES" not in prompt:
                entry["status"] = int(code)
                log(entry)
                kind = "overloaded_error" if code == "529" else "api_error"
                return self.reply_json(int(code), {"type": "error", "error": {"type": kind, "message": "Overloaded" if code == "529" else "Internal server error"}})
        entry["status"] = 200
        log(entry)
        blocks = self.script(prompt, step, results, body)
        try:
            self.stream(body.get("model") or "claude-opus-5-5", blocks, slow="PLEASE-SLOW" in prompt and step == 0)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def usage_limit(self, reset_at):
        """A 429 refusal by the account's 5-hour limit, with the headers the real API sends."""
        data = json.dumps({"type": "error", "error": {"type": "rate_limit_error",
                           "message": "This request would exceed your account's rate limit. Please try again later."}}).encode()
        self.send_response(429)
        headers = {
            "anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-reset": str(reset_at),
            "anthropic-ratelimit-unified-representative-claim": "five_hour",
            "anthropic-ratelimit-unified-fallback": "available",
            "anthropic-ratelimit-unified-5h-utilization": "1",
            "anthropic-ratelimit-unified-5h-reset": str(reset_at),
            "anthropic-ratelimit-unified-5h-status": "rejected",
            "anthropic-ratelimit-unified-7d-utilization": "0.41",
            "anthropic-ratelimit-unified-7d-reset": str(reset_at + 300000),
            "anthropic-ratelimit-unified-7d-status": "allowed",
            "anthropic-ratelimit-unified-overage-status": "rejected",
            "anthropic-ratelimit-unified-overage-disabled-reason": "org_level_disabled",
            "Content-Type": "application/json",
            "Content-Length": str(len(data)),
        }
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def script(self, prompt, step, results, body):
        """The content blocks of the reply: ("text", str) or ("tool_use", name, input)."""
        first_line = prompt.strip().splitlines()[0] if prompt.strip() else ""
        match = re.search(r"PLEASE-WRITE (\S+)", prompt)
        if match:
            if step == 0:
                return [("tool_use", "Write", {"file_path": match.group(1), "content": "written by the mock model\n"})]
            return [("text", "WROTE-FILE. tool said: " + (results[-1] if results else ""))]
        match = re.search(r"PLEASE-BASH2 (.+)", prompt)
        if match:
            commands = [c.strip() for c in match.group(1).split(";;")]
            if step == 0:
                return [("tool_use", "Bash", {"command": c, "description": "run it"}) for c in commands]
            again = waiting_commands(body)
            if again:
                return [("tool_use", "Bash", {"command": again[0], "description": "ask again"})]
            return [("text", "BASH-SAID: " + " | ".join(all_tool_results(body)))]
        match = re.search(r"PLEASE-BASH (.+)", prompt)
        if match:
            if step == 0:
                return [("tool_use", "Bash", {"command": match.group(1).strip(), "description": "run the command"})]
            return [("text", "BASH-SAID: " + (results[-1] if results else ""))]
        if "PLEASE-CCMP" in prompt:
            if step == 0:
                return [("tool_use", "mcp__ccmp__start_cc_task_async", {"prompt": "FAKE_SLEEP=0 a nested task"})]
            if step == 1:
                found = re.search(r'"id"\s*:\s*"([0-9a-f-]{36})"', results[-1] if results else "")
                task_id = found.group(1) if found else "unknown"
                return [("tool_use", "mcp__ccmp__wait_for_tasks", {"task_ids": [task_id], "timeout_s": 60})]
            return [("text", "MCP-DONE. wait said: " + (results[-1] if results else ""))]
        if "PLEASE-EXEC" in prompt:
            if step == 0:
                return [("tool_use", "mcp__ccmp__execute_cc_task", {"prompt": "FAKE_SLEEP=2 an executed task"})]
            return [("text", "EXEC-DONE. it said: " + (results[-1] if results else ""))]
        return [("text", "MOCK-OK: " + first_line)]

    def event(self, name, data):
        self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        self.wfile.flush()

    def stream(self, model, blocks, slow):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.send_header("request-id", "req_mock_" + uuid.uuid4().hex[:16])
        self.end_headers()
        self.close_connection = True
        message_id = "msg_mock_" + uuid.uuid4().hex[:20]
        usage = {"input_tokens": 2560, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        self.event("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage}})
        if slow:
            for _ in range(30):
                self.event("ping", {"type": "ping"})
                time.sleep(1)
        stop_reason = "end_turn"
        for index, block in enumerate(blocks):
            if block[0] == "text":
                self.event("content_block_start", {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
                self.event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": block[1]}})
            else:
                stop_reason = "tool_use"
                tool_id = "toolu_mock_" + uuid.uuid4().hex[:20]
                self.event("content_block_start", {"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": tool_id, "name": block[1], "input": {}}})
                self.event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": json.dumps(block[2])}})
            self.event("content_block_stop", {"type": "content_block_stop", "index": index})
        self.event("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}, "usage": {"output_tokens": 10}})
        self.event("message_stop", {"type": "message_stop"})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"MOCK listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
