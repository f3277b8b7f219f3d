"""plugway provider plugin for Cohere's v2 Chat API."""
