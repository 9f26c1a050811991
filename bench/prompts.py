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

# Replies that copy much of their input (edits, rewrites, reformatting): where speculative
# decoding by prompt lookup drafts well.
COPY_PROMPTS = [
    "Rename the variable `total` to `subtotal` in this Python function and give the whole "
    "function back:\n\ndef add_tax(items, rate):\n    total = 0\n    for item in items:\n"
    "        total += item.price * item.quantity\n    tax = total * rate\n"
    "    return total + tax\n",
    "Repeat this paragraph, replacing every 'cat' with 'dog': The cat sat on the mat. The cat "
    "was happy because the cat had eaten. Later the cat slept next to another cat in the sun.",
    "Turn this list into a JSON array of objects with the keys name and age: Alice 31, Bob 27, "
    "Carol 45, Dave 38, Erin 22.",
    "Copy this text, fixing the spelling: The wether was realy nice yesterday, so we went to "
    "the beech and swam in the see untill the evening.",
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
