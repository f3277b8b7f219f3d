"""The formats layer: one module per wire format, each converting requests, answers, stream
events and errors between that API and the gateway's canonical form (OpenAI Chat Completions).

Providers use it outbound (canonical request -> upstream API -> canonical answer) and inbound
endpoint plugins use it the other way (client API -> canonical request -> client API answer), so
each translation is written once. Modules here are pure: no I/O, no imports from
``plugway.builtin_providers`` or ``plugway.plugins``; third-party providers and endpoints may
import them.

- :mod:`plugway.formats.anthropic_messages`: Anthropic Messages, both directions, and the
  :class:`~plugway.formats.anthropic_messages.NativeMessages` pass-through protocol;
- :mod:`plugway.formats.openai_responses`: the OpenAI Responses API (``/v1/responses``)
  requests to chat, chat answers and chunk streams to Response objects and stream events, and
  the input/output items a stored conversation carries to its next turn;
- :mod:`plugway.formats.gemini`: Gemini ``generateContent`` and embeddings;
- :mod:`plugway.formats.openai_embeddings`: OpenAI's embeddings answer;
- :mod:`plugway.formats.common`: data URLs and JSON tool arguments.
"""
