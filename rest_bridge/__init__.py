"""OpenAI-compatible REST bridge: translates REST/SSE to osaurus gRPC calls. No model, no engine."""
