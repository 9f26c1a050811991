"""The fixed workload: 20 distinct chat prompts, and a 10-turn conversation."""

from __future__ import annotations

PROMPTS = [
    "Explain how a refrigerator keeps food cold.",
    "Write a short poem about autumn leaves.",
    "What are the main causes of the French Revolution?",
    "Give me three tips for learning a new language.",
    "Describe the water cycle in simple terms.",
    "What is the difference between a virus and a bacterium?",
    "Write a short story about a robot who learns to paint.",
    "How does a bicycle stay upright while moving?",
    "List five healthy breakfast ideas and explain why they are healthy.",
    "Explain what a black hole is to a ten-year-old.",
    "What makes a good team leader?",
    "Describe how bread is made, step by step.",
    "Why is the sky blue?",
    "Write a letter to a friend describing a trip to the mountains.",
    "What are the benefits of regular exercise?",
    "Explain how the internet works in a few paragraphs.",
    "What should I consider when adopting a dog?",
    "Summarize the plot of a classic fairy tale of your choice.",
    "How do plants make their food?",
    "Give advice to someone starting their first job.",
]

CONVERSATION = [
    "I want to plan a vegetable garden. Where should I start?",
    "Which vegetables are easiest for a beginner?",
    "How much sun do tomatoes need?",
    "How often should I water them?",
    "What about pests? How do I keep them away naturally?",
    "Can I grow herbs next to the tomatoes?",
    "What soil should I buy?",
    "When is the best time to plant?",
    "How do I know when the tomatoes are ripe?",
    "Summarize the whole plan in a short list.",
]


def chat(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]
