"""OpenAI's API: chat completions and models (protocol, translation, routes, error shape)."""
