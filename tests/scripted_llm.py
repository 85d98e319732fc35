"""A scripted OpenAI-compatible chat server on loopback: a stand-in for a capable teacher LLM.

Why it exists: no model that can run here reliably follows "answer with a JSON array" (the embedded
SmolLM2-135M mostly does not), yet the batch machinery, parsing, provenance and resume logic must be
checked against answers a good teacher writes. This server reads the studio's own prompt and answers
the way a good model would, in the shapes real models use (fenced JSON, preambles, objects). Every
answer is a pure function of the prompt, so a re-run unit gets the same rows: exactly what the
resume tests need to prove "no duplicate, no lost row". The real teachers are tested elsewhere:
tests/test_teacher_local.py (transformers), tests/test_teacher_endpoint.py (`transformers serve`),
and the SmolLM2 integration test in tests/test_generation.py.

Judge prompts (studio.quality.judge, recognised by their marker line) get scores: see `judge_answer`.
Pairwise judge prompts (studio.evaluation.pairwise, marker in the system message) get '1', '2' or 'tie':
see `pairwise_answer`; `pairwise="first"` makes a judge that always picks answer 1 (pure position bias).
`prompts` records every request's messages, so a test can check what the studio asked.

Options: `delay` seconds per request (to kill a batch mid-way), `garbage_every` (every Nth request
gets a prose answer that cannot be parsed), `fail_after` (HTTP 500 from request N on),
`response_format`: "ignore" (default: the field is read past, as many servers do), "honour" (a request
carrying a JSON schema gets the answer as bare JSON, checked against that schema with xgrammar: a
value the schema refuses is an HTTP 500, so a test sees a schema the server could not have honoured),
or "reject" (HTTP 400 "response_format is not supported", as `transformers serve` answers).
`formats` records every request's response_format (None where it had none).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PHRASINGS = ["Please help: {r}", "I need this done: {r}", "Quick question. {r}", "Could you do this for me? {r}",
             "Task for you: {r}", "Hi! {r} Thanks.", "Can you help? {r}", "One more thing: {r}"]


def judge_answer(prompt: str) -> str:
    """A judge's scores for a studio judge prompt (studio.quality.judge), in the shapes real judges use.

    A pure function of the candidate: answers under three words get accuracy 2; the other scores come
    from a hash. The shape (plain JSON, fenced JSON with chatter, "Accuracy: 4" prose) also follows the
    hash, so a batch exercises every reading path of parse_judgement through real HTTP.
    """
    m = re.search(r"^### Candidate prompt\n(.*)\n### Candidate answer\n(.*)\n### End of candidate$", prompt,
                  re.S | re.M)
    candidate_prompt, candidate_answer = (m.group(1), m.group(2)) if m else ("", "")
    h = int(hashlib.sha256((candidate_prompt + "\x00" + candidate_answer).encode()).hexdigest()[:8], 16)
    accuracy = 2 if len(candidate_answer.split()) < 3 else 4 + h % 2
    tone, following = 3 + (h >> 4) % 3, 4 + (h >> 8) % 2
    rationale = "Too short to be useful." if accuracy == 2 else "Correct and on task; could be more concise."
    shape = (h >> 12) % 3
    if shape == 0:
        return json.dumps({"accuracy": accuracy, "tone": tone, "instruction_following": following,
                           "rationale": rationale})
    if shape == 1:
        body = json.dumps({"accuracy": accuracy, "tone": tone, "instruction_following": following,
                           "rationale": rationale}, indent=2)
        return f"Here is my assessment:\n```json\n{body}\n```"
    return (f"**Accuracy**: {accuracy}/5\n**Tone**: {tone}/5\n**Instruction following**: {following}/5\n"
            f"Rationale: {rationale}")


PAIRWISE_MARKER = "[seed-studio pairwise judge"
"""Start of studio.evaluation.pairwise.MARKER (sent as the system message)."""


def pairwise_answer(prompt: str, mode: str = "longer") -> str:
    """A pairwise judge's verdict on a studio.evaluation.pairwise prompt, in the shapes real judges use.

    "longer" (content-based, so both orders agree): the longer answer (in characters) wins, equal lengths
    tie. "first": answer 1 always wins, whatever it says (a judge with pure position bias).
    """
    m = re.search(r"\nAnswer 1:\n(.*)\n\nAnswer 2:\n(.*)\n\nWhich answer is better\?", prompt, re.S)
    if mode == "first" or not m:
        return "1"
    one, two = len(m.group(1).strip()), len(m.group(2).strip())
    if one == two:
        return "Tie: they are equally good."
    winner = "1" if one > two else "2"
    shape = (one + two) % 3
    return [winner, f"Answer {winner} is better.", json.dumps({"winner": int(winner)})][shape]


def answer(prompt: str) -> str:
    """What a diligent teacher would write for a Seed Studio prompt."""
    if "[seed-studio judge rubric" in prompt:  # studio.quality.judge.JUDGE_MARKER
        return judge_answer(prompt)
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:8]
    if m := re.search(r"in (\d+) different ways", prompt):
        n = int(m.group(1))
        request = re.search(r"^Request: (.*)$", prompt, re.M).group(1).strip()
        items = [p.format(r=request) for p in PHRASINGS][:n]
        return "Sure! Here are the rewrites:\n```json\n" + json.dumps(items, indent=1) + "\n```"
    if "one clear, specific instruction" in prompt:
        instruction = re.search(r"^Instruction: (.*)$", prompt, re.M).group(1).strip()
        return f'Here is a clearer version:\n"{instruction} Answer in three short sentences for a general reader."'
    if "keys are the style names" in prompt:
        styles = re.findall(r"^- ([^:\n]+):", prompt, re.M)
        request = re.search(r"^Request: (.*)$", prompt, re.M).group(1).strip()
        return json.dumps({s: f"({s} answer, ref {digest}) Here is how to handle: {request}" for s in styles})
    if m := re.search(r"Write (\d+) new examples", prompt):
        n = int(m.group(1))
        keys = re.search(r"with the keys (.*), and nothing else", prompt).group(1).split(", ")
        labels = re.search(r"Use only these labels: (.*)\.", prompt)
        rows = []
        for i in range(n):
            row = {}
            for key in keys:
                if key == "label" and labels:
                    row[key] = labels.group(1).split(", ")[i % len(labels.group(1).split(", "))]
                elif key == "input":
                    row[key] = ""
                else:
                    row[key] = f"New {key} {digest}-{i}: a different case written in the same style."
            rows.append(row)
        return json.dumps(rows)
    return "OK"


def _bare_json(content: str) -> str:
    """The JSON value inside a scripted answer (fence and preamble gone), as a schema-honouring server
    sends it: a refinement's quoted text becomes {"instruction": ...}."""
    m = re.search(r"```json\n(.*)\n```", content, re.S)
    if m:
        return json.dumps(json.loads(m.group(1)))
    if content.startswith("Here is a clearer version:"):
        return json.dumps({"instruction": content.split("\n", 1)[1].strip().strip('"')})
    return content


def _fit(value: Any, schema: dict[str, Any] | bool) -> Any:
    """What a schema-constrained decoder would have written instead: strings end at their maxLength, arrays
    stop at maxItems and follow prefixItems, a property fixed to one value (a plan draw) is written first.
    (Anything else that does not fit is left for the schema check to catch.)"""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, str) and "maxLength" in schema:
        return value[: schema["maxLength"]]
    if isinstance(value, list) and schema.get("type") == "array":
        prefix = schema.get("prefixItems", [])
        kept = value[: schema.get("maxItems", len(value))]
        return [_fit(v, prefix[i] if i < len(prefix) else schema.get("items", {})) for i, v in enumerate(kept)]
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties", {})
        fixed = {k: p["enum"][0] for k, p in props.items() if len(p.get("enum", [])) == 1 and k not in value}
        return {**fixed, **{k: _fit(v, props.get(k, {})) for k, v in value.items()}}
    return value


class ScriptedLLM:
    """`with ScriptedLLM() as llm:` serves http://127.0.0.1:PORT/v1; `llm.requests` counts the calls."""

    def __init__(self, *, delay: float = 0.0, garbage_every: int = 0, fail_after: int | None = None,
                 model: str = "scripted-teacher", pairwise: str = "longer", response_format: str = "ignore") -> None:
        self.delay = delay
        self.response_format = response_format
        self.formats: list[Any] = []
        self.pairwise = pairwise
        self.prompts: list[list[dict[str, str]]] = []
        self.garbage_every = garbage_every
        self.fail_after = fail_after
        self.model = model
        self.requests = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedLLM:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": owner.model, "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with owner._lock:
                    owner.requests += 1
                    number = owner.requests
                    owner.prompts.append(body.get("messages", []))
                    owner.formats.append(body.get("response_format"))
                schema_format = body.get("response_format")
                if schema_format and owner.response_format == "reject":
                    self._send(400, {"error": "Unsupported parameter: response_format is not supported"})
                    return
                if owner.delay:
                    time.sleep(owner.delay)
                if owner.fail_after is not None and number > owner.fail_after:
                    self._send(500, {"error": "the model server crashed"})
                    return
                prompt = body["messages"][-1]["content"]
                if owner.garbage_every and number % owner.garbage_every == 0:
                    content = "I am sorry, but I would rather talk about the weather today"
                elif any(PAIRWISE_MARKER in str(m.get("content", "")) for m in body["messages"]):
                    content = pairwise_answer(prompt, owner.pairwise)
                else:
                    content = answer(prompt)
                if schema_format and owner.response_format == "honour":
                    schema = schema_format["json_schema"]["schema"]
                    content = json.dumps(_fit(json.loads(_bare_json(content)), schema))
                    from studio.teachers.grammar import schema_valid

                    if not schema_valid(schema, content):
                        self._send(500, {"error": f"answer does not fit the schema: {content[:200]}"})
                        return
                self._send(200, {"id": f"c{number}", "object": "chat.completion", "created": 0, "model": owner.model,
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": content}}],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
