"""osaurus: a local LLM inference server on MLX, gRPC first, with an OpenAI-compatible bridge."""

__version__ = "0.1.0"
