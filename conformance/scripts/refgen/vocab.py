"""Small synthetic tokenizers for the tiny random models.

Two vocabularies of a few hundred tokens, learned deterministically from a short
text written for this purpose (so nothing licensed is shipped):

- SPM: llama.cpp's "llama" tokenizer model (SentencePiece BPE): <unk>, <s>, </s>,
  the 256 byte-fallback tokens <0x00>..<0xFF>, merged pieces scored by merge rank,
  then the single characters of the training text.
- BPE: llama.cpp's "gpt2" tokenizer model with the "qwen2" pre-tokenizer: the 256
  byte-level symbols (GPT-2's byte-to-unicode map), one token per learned merge,
  and the ChatML control tokens.

Both cover every byte, so any text tokenizes (SPM through byte fallback).
"""

from __future__ import annotations

import collections
import re
from dataclasses import dataclass, field

# llama_token_type values (llama.cpp's enum llama_token_type / gguf TokenType).
TOKEN_NORMAL = 1
TOKEN_UNKNOWN = 2
TOKEN_CONTROL = 3
TOKEN_BYTE = 6

SPM_SPACE = "\u2581"  # SentencePiece's visible space, "▁"

# Written for these references; any English prose would do. Its letter and
# word frequencies decide which pieces and merges the vocabularies get.
TRAINING_TEXT = """\
the small model reads the text and then it writes the next word. when the
weights are random the words are not good, but the numbers that come out are
the same on every machine, and that is the point of a reference. an engine that
reads the same file must find the same numbers: the same tokens, the same logits
at every position, and the same greedy continuation while the margins are clear.
there are four kinds of model here and each one has its own norms, heads and
tokenizer. the tokens in this vocabulary were learned from this paragraph, so
the common pieces of it become single tokens and rare letters fall back to
bytes. in the morning the train left the station on time; at noon it reached
the sea, and in the evening the passengers walked along the shore and talked
about the weather, the water and the long road home.
"""

SPM_MERGES = 48
BPE_MERGES = 64


@dataclass
class Vocab:
    """A tokenizer as GGUF stores it (tokenizer.ggml.* keys)."""

    model: str  # tokenizer.ggml.model
    pre: str | None  # tokenizer.ggml.pre
    tokens: list[str]
    scores: list[float] | None
    token_types: list[int]
    merges: list[str] | None
    bos_id: int
    eos_id: int
    unk_id: int | None
    add_bos: bool
    add_space_prefix: bool | None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.tokens)


def _learn_merges(words: collections.Counter, n_merges: int) -> list[tuple[str, str]]:
    """Plain BPE: repeatedly merge the most frequent adjacent pair.

    Ties go to the lexicographically smallest pair so that the result does not
    depend on dict ordering.
    """
    segs = {w: list(w) for w in words}
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: collections.Counter = collections.Counter()
        for w, count in words.items():
            s = segs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += count
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        joined = best[0] + best[1]
        for w, s in segs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == best[0] and s[i + 1] == best[1]:
                    out.append(joined)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            segs[w] = out
    return merges


def spm_vocab() -> Vocab:
    """A SentencePiece-style vocabulary for the llama and bitnet models."""
    text = SPM_SPACE + TRAINING_TEXT.replace("\n", " ").replace(" ", SPM_SPACE)
    # SentencePiece never merges across a word start, so every word keeps its
    # leading "▁" and pieces contain at most one, at the front.
    words = collections.Counter(re.findall(SPM_SPACE + "[^" + SPM_SPACE + "]*", text))
    merges = _learn_merges(words, SPM_MERGES)

    tokens = ["<unk>", "<s>", "</s>"]
    types = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL]
    scores = [0.0, 0.0, 0.0]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(TOKEN_BYTE)
        scores.append(0.0)
    # llama.cpp's SPM tokenizer merges the adjacent pair whose result has the
    # highest score, so the merge rank becomes a descending score.
    for rank, (a, b) in enumerate(merges):
        piece = a + b
        if piece in tokens:
            continue
        tokens.append(piece)
        types.append(TOKEN_NORMAL)
        scores.append(-float(rank))
    chars = sorted(set(text))
    for i, ch in enumerate(chars):
        if ch in tokens:
            continue
        tokens.append(ch)
        types.append(TOKEN_NORMAL)
        scores.append(-float(len(merges) + i))
    return Vocab(
        model="llama",
        pre=None,
        tokens=tokens,
        scores=scores,
        token_types=types,
        merges=None,
        bos_id=1,
        eos_id=2,
        unk_id=0,
        add_bos=True,
        add_space_prefix=True,
    )


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters.

    Printable Latin-1 bytes stand for themselves; the others are shifted to
    U+0100 and up, in byte order, so that no token contains whitespace or
    control characters.
    """
    keep = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(0xA1, 0xAC + 1))
        + list(range(0xAE, 0xFF + 1))
    )
    out: dict[int, str] = {}
    shifted = 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + shifted)
            shifted += 1
    return out


# An approximation of the qwen2 pre-tokenizer (letters with one leading
# non-letter, single digits, punctuation runs, whitespace); only used to pick
# merges, llama.cpp's own regex does the real splitting.
_PRE_SPLIT = re.compile(r"[^\r\n\w]?[^\W\d_]+|\d| ?[^\s\w]+[\r\n]*|\s*[\r\n]+|\s+")

CHATML_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def bpe_vocab() -> Vocab:
    """A byte-level BPE vocabulary (qwen2 pre-tokenizer) for qwen2 and qwen3."""
    b2u = bytes_to_unicode()
    words = collections.Counter(
        "".join(b2u[b] for b in w.encode("utf-8")) for w in _PRE_SPLIT.findall(TRAINING_TEXT)
    )
    merges = _learn_merges(words, BPE_MERGES)
    tokens = [b2u[b] for b in range(256)]
    types = [TOKEN_NORMAL] * 256
    for a, b in merges:
        tokens.append(a + b)
        types.append(TOKEN_NORMAL)
    first_special = len(tokens)
    for s in CHATML_SPECIALS:
        tokens.append(s)
        types.append(TOKEN_CONTROL)
    if len(set(tokens)) != len(tokens):
        raise ValueError("BPE vocabulary has duplicate tokens")
    return Vocab(
        model="gpt2",
        pre="qwen2",
        tokens=tokens,
        scores=None,
        token_types=types,
        merges=[f"{a} {b}" for a, b in merges],
        bos_id=first_special,  # <|endoftext|>, as Qwen2's files say (never added)
        eos_id=first_special + 2,  # <|im_end|>
        unk_id=None,
        add_bos=False,
        add_space_prefix=None,
        extra={"chat_template": CHATML_TEMPLATE},
    )


def write_vocab(writer, vocab: Vocab) -> None:
    """Adds the tokenizer.ggml.* keys to a gguf.GGUFWriter."""
    writer.add_tokenizer_model(vocab.model)
    if vocab.pre is not None:
        writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    if vocab.scores is not None:
        writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.token_types)
    if vocab.merges is not None:
        writer.add_token_merges(vocab.merges)
    writer.add_bos_token_id(vocab.bos_id)
    writer.add_eos_token_id(vocab.eos_id)
    if vocab.unk_id is not None:
        writer.add_unk_token_id(vocab.unk_id)
    writer.add_add_bos_token(vocab.add_bos)
    if vocab.add_space_prefix is not None:
        writer.add_add_space_prefix(vocab.add_space_prefix)
    if "chat_template" in vocab.extra:
        writer.add_chat_template(vocab.extra["chat_template"])
