"""What checking a request at the door costs, in-process: each door's validator
(:func:`plugway.formats.openai_chat.validate_chat_request`, the embeddings and Anthropic
Messages ones) on the bench's own request body and on a larger agentic one (a system prompt,
20 turns with tool calls and results, 8 tools with JSON schemas, sampling fields). Prints JSON
(microseconds per call, best of ``--rounds`` rounds of ``--calls`` calls).

``python bench/validation_cost.py [--calls 20000] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from plugway.formats.anthropic_messages import validate_messages_request
from plugway.formats.openai_chat import validate_chat_request
from plugway.formats.openai_embeddings import validate_embeddings_request

PROMPT = "Write one sentence about benchmarks."
BENCH_BODY: dict[str, Any] = {
    "model": "l0-s",
    "messages": [{"role": "user", "content": PROMPT}],
    "max_tokens": 64,
}


def agentic_body() -> dict[str, Any]:
    tools = [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": "Does one thing well.",
                "parameters": {
                    "type": "object",
                    "properties": {"path": {"type": "string"}, "limit": {"type": "integer"}},
                    "required": ["path"],
                },
            },
        }
        for i in range(8)
    ]
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a coding agent."}]
    for i in range(20):
        messages.append({"role": "user", "content": [{"type": "text", "text": f"step {i}"}]})
        call = {
            "id": f"call_{i}",
            "type": "function",
            "function": {"name": "tool_1", "arguments": '{"path": "a.py"}'},
        }
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"call_{i}", "content": "ok"})
    return {
        "model": "agent",
        "messages": messages,
        "tools": tools,
        "tool_choice": "auto",
        "temperature": 0.2,
        "max_completion_tokens": 4096,
        "stream": True,
        "stream_options": {"include_usage": True},
        "response_format": {"type": "text"},
    }


MESSAGES_BODY: dict[str, Any] = {
    "model": "claude",
    "max_tokens": 1024,
    "system": [{"type": "text", "text": "You are terse."}],
    "messages": [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {"p": 1}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]},
    ],
    "tools": [{"name": "read", "input_schema": {"type": "object"}}],
}
EMBEDDINGS_BODY: dict[str, Any] = {"model": "embed", "input": ["a", "b", "c", "d"]}


def per_call(
    check: Callable[[Mapping[str, Any]], None], body: Mapping[str, Any], calls: int
) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        check(body)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cases: dict[str, tuple[Callable[[Mapping[str, Any]], None], Mapping[str, Any]]] = {
        "chat, the bench's body": (validate_chat_request, BENCH_BODY),
        "chat, agentic (61 messages, 8 tools)": (validate_chat_request, agentic_body()),
        "embeddings, 4 inputs": (validate_embeddings_request, EMBEDDINGS_BODY),
        "messages, tool round trip": (validate_messages_request, MESSAGES_BODY),
    }
    best = {name: float("inf") for name in cases}
    for _ in range(args.rounds):
        for name, (check, body) in cases.items():
            best[name] = min(best[name], per_call(check, body, args.calls))
    print(json.dumps({name: round(us, 3) for name, us in best.items()}, indent=1))


if __name__ == "__main__":
    main()
