"""An Ollama Modelfile for an exported GGUF, and a reader that checks one the way Ollama's parser does.

    text = modelfile(from_file="run3-q8_0.gguf", chat_template=tmpl, decoding=Decoding(...))
    parse_modelfile(text)      # [("FROM", "run3-q8_0.gguf"), ("TEMPLATE", "..."), ("PARAMETER", "stop <|im_end|>")...]

The TEMPLATE is Ollama's Go template for the model's own chat format, recognised from its Jinja chat template:
ChatML (`<|im_start|>`: SmolLM, Qwen), Llama 3 headers, and Mistral/Llama 2 `[INST]`; the system prompt
comes from SYSTEM (Ollama also lists it among .Messages, which the templates skip so it is not written twice).
A template the studio does not recognise gets no TEMPLATE line: Ollama then uses the chat template stored in
the GGUF, and the export says so. A default system prompt written in the Jinja template (SmolLM2's "You are
a helpful AI assistant named SmolLM...") becomes SYSTEM, so Ollama builds the same prompt transformers does.

Decoding: PARAMETER temperature, top_p, num_predict and num_ctx come from how the run was judged (its newest
evaluation's settings, else the model's generation_config.json) and its training length; stop strings close
a turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from studio.errors import ExportError

COMMANDS = ("FROM", "ADAPTER", "TEMPLATE", "SYSTEM", "PARAMETER", "MESSAGE", "LICENSE", "REQUIRES")
"""The instructions Ollama's Modelfile parser accepts (ollama/parser/parser.go)."""

_CHATML = ('{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
           '{{- range .Messages }}{{ if ne .Role "system" }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n'
           '{{ end }}{{ end }}'
           '<|im_start|>assistant\n')
_LLAMA3 = ('{{- if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}'
           '{{- range .Messages }}{{ if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n'
           '{{ .Content }}<|eot_id|>{{ end }}{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n')
_INST = ('{{- range .Messages }}{{ if eq .Role "user" }}[INST] {{ if $.System }}{{ $.System }}\n\n{{ end }}'
         '{{ .Content }} [/INST]{{ else if eq .Role "assistant" }} {{ .Content }}</s>{{ end }}{{ end }}')


@dataclass(frozen=True)
class ChatFormat:
    name: str
    template: str
    stops: tuple[str, ...]


FORMATS = (
    ChatFormat("ChatML", _CHATML, ("<|im_start|>", "<|im_end|>")),
    ChatFormat("Llama 3", _LLAMA3, ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
    ChatFormat("Mistral [INST]", _INST, ("[INST]", "[/INST]")),
)


def chat_format(jinja_template: str) -> ChatFormat | None:
    """The Ollama template matching a Jinja chat template, or None when the studio does not recognise it."""
    text = jinja_template or ""
    if "<|im_start|>" in text:
        return FORMATS[0]
    if "<|start_header_id|>" in text:
        return FORMATS[1]
    if "[INST]" in text:
        return FORMATS[2]
    return None


# The newline after "system" is a real one or a Jinja "\n" escape, depending on how the template was saved.
_DEFAULT_SYSTEM = re.compile(r"<\|im_start\|>system(?:\n|\\n)(?P<text>[^'\"{}<]+?)<\|im_end\|>")


def default_system(jinja_template: str) -> str:
    """The system prompt a ChatML Jinja template inserts when the conversation has none ('' when it inserts none)."""
    m = _DEFAULT_SYSTEM.search(jinja_template or "")
    return m["text"].strip() if m else ""


@dataclass(frozen=True)
class Decoding:
    temperature: float
    top_p: float
    num_predict: int
    num_ctx: int
    source: str
    """Where the numbers come from, said in the export's notes."""


def _quote(text: str) -> str:
    if '"""' in text:
        raise ExportError('The chat template contains """, which a Modelfile cannot quote. Write the Modelfile '
                          "by hand for this model.")
    return f'"""{text}"""'


def modelfile(*, from_file: str, chat_template: str, decoding: Decoding, adapter_file: str = "",
              system: str | None = None) -> str:
    """The Modelfile text; `from_file` and `adapter_file` are paths relative to the Modelfile's folder."""
    fmt = chat_format(chat_template)
    lines = ["# Made by Seed Studio. Create the model with: ollama create <name> -f Modelfile", f"FROM ./{from_file}"]
    if adapter_file:
        lines.append(f"ADAPTER ./{adapter_file}")
    if fmt is not None:
        lines.append(f"TEMPLATE {_quote(fmt.template)}")
    sys_prompt = default_system(chat_template) if system is None else system
    if sys_prompt:
        lines.append(f"SYSTEM {_quote(sys_prompt)}")
    lines += [f"PARAMETER temperature {decoding.temperature:g}", f"PARAMETER top_p {decoding.top_p:g}",
              f"PARAMETER num_predict {decoding.num_predict}", f"PARAMETER num_ctx {decoding.num_ctx}"]
    for stop in fmt.stops if fmt else ():
        lines.append(f'PARAMETER stop "{stop}"')
    text = "\n".join(lines) + "\n"
    parse_modelfile(text)  # what we write must read back
    return text


# ------------------------------------------------------------------------------------------------ reading


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """(instruction, argument) pairs, as Ollama's parser reads them; ExportError names the line it cannot read.

    Rules (ollama/parser): one instruction per line, case-insensitive; '#' starts a comment line; an argument
    may be a "quoted" string or a \"\"\"triple-quoted\"\"\" one spanning lines; PARAMETER takes a name and a value;
    exactly one FROM.
    """
    out: list[tuple[str, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        command = word.upper()
        if command not in COMMANDS:
            raise ExportError(f"Modelfile line {i}: '{word}' is not an Ollama instruction "
                              f"({', '.join(COMMANDS)}).")
        rest = rest.strip()
        if rest.startswith('"""'):
            body = rest[3:]
            start = i
            while '"""' not in body:
                if i >= len(lines):
                    raise ExportError(f'Modelfile line {start}: a """ string is never closed.')
                body += "\n" + lines[i]
                i += 1
            value, _, after = body.partition('"""')
            if after.strip():
                raise ExportError(f'Modelfile line {i}: text after the closing """.')
        elif rest.startswith('"') and command != "PARAMETER":
            if not rest.endswith('"') or len(rest) < 2:
                raise ExportError(f"Modelfile line {i}: a quoted string is never closed.")
            value = rest[1:-1]
        else:
            value = rest
        if not value and command != "SYSTEM":
            raise ExportError(f"Modelfile line {i}: {command} needs a value.")
        if command == "PARAMETER":
            name, _, val = value.partition(" ")
            if not name or not val.strip():
                raise ExportError(f"Modelfile line {i}: PARAMETER needs a name and a value.")
        out.append((command, value))
    froms = [v for c, v in out if c == "FROM"]
    if len(froms) != 1:
        raise ExportError(f"A Modelfile needs exactly one FROM line; this one has {len(froms)}.")
    return out
