"""Ollama's API under /api (docs/api.md of ollama/ollama): chat, generate, the model manager."""
