"""Prompts and the tokenizer corpus. All written for these references."""

from __future__ import annotations

# (name, text, parse_special) per tokenizer kind of the tiny models. The SPM
# prompt has capitals, digits and an accented letter that only byte fallback
# covers; the BPE one is a ChatML turn, so the control tokens get parsed.
TINY_PROMPTS = {
    "spm": ("The weights are random, but the numbers that come out are the same: café 42!", False),
    "bpe": (
        "<|im_start|>user\nAre the numbers the same? 42, café<|im_end|>\n<|im_start|>assistant\n",
        True,
    ),
}

SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# (name, text, parse_special)
SMOLLM2_PROMPTS = [
    ("capital", "The capital of France is", False),
    (
        "chatml",
        "<|im_start|>system\n"
        + SMOLLM2_SYSTEM
        + "<|im_end|>\n<|im_start|>user\nWhat is the capital of France? Answer in one "
        "sentence.<|im_end|>\n<|im_start|>assistant\n",
        True,
    ),
    (
        "story",
        "Once upon a time, in a small village at the edge of a forest, there lived an old "
        "clockmaker. Every morning he opened his shop, wound every clock on the wall, and "
        "waited for the first customer of the day. One winter morning,",
        False,
    ),
    (
        "code",
        'def fibonacci(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n'
        "    if n < 2:\n        return n\n",
        False,
    ),
    (
        "multilingual",
        "Le chat dort sur la table. Der Hund schläft im Garten. 猫はかわいいです。 "
        "Числа: 1, 2, 3. ¿Dónde está la biblioteca?",
        False,
    ),
    (
        "long",
        "A reference implementation is only useful if its numbers can be trusted. To trust "
        "them, one writes the same computation twice, in two different ways, and checks that "
        "the results agree to within the rounding that each way must make. The first way is "
        "the fast one: blocks of quantized weights, fused kernels, activations rounded to "
        "eight bits before each matrix product. The second way is the slow one: every weight "
        "expanded to a double, every product summed in full precision, nothing clever at all. "
        "When the two agree, the fast one is probably right; when they disagree, the slow one "
        "tells you where to look. The table below lists, for each model and each weight type,",
        False,
    ),
]

# Texts for tokenizer checks: whitespace runs, digits, punctuation, contractions,
# code, non-Latin scripts, emoji, and text that looks like special tokens.
TOKENIZER_CORPUS = [
    "",
    " ",
    "  ",
    "\n",
    "\n\n\n",
    "\t",
    "Hello world",
    " Hello world",
    "Hello World!",
    "hello   world  ",
    "   leading and trailing spaces   ",
    "I'm sure they've said we'll go; you'd know, isn't it?",
    "DON'T SHOUT, it's LOUD",
    "1234567890",
    "3.14159 and 2.71828, 1,000,000 and -42",
    "2024-01-15T10:30:00Z",
    "email: someone@example.com, url: https://example.com/a/b?c=d&e=f",
    "def f(x):\n    return x * 2  # double\n",
    "fn main() {\n\tprintln!(\"{}\", 1 + 1);\n}",
    "<html><body class=\"x\">&amp;</body></html>",
    "café naïve résumé Ångström",
    "Straße, Größe, übermäßig",
    "Привет, мир! Как дела?",
    "日本語のテキストです。",
    "中文分词测试：你好，世界！",
    "한국어 문장입니다.",
    "مرحبا بالعالم",
    "שלום עולם",
    "ελληνικά γράμματα",
    "हिन्दी पाठ",
    "emoji: 🦙🔥👍🏽 and 👨‍👩‍👧",
    "math: ∑ x² ≤ ∞, α + β = γ",
    "tabs\tand\nnewlines\r\nmixed",
    "repeated letters: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!???...,,,;;;:::",
    "<|im_start|>user\nhi<|im_end|>",
    "<s> </s> <unk> <|endoftext|>",
    "a<|im_end|>b",
    "The quick brown fox jumps over the lazy dog.",
    "the small model reads the text and then it writes the next word.",
]
