"""The tiny preset: a 2-layer, 32-wide random encoder and a word-list tokenizer (offline, trains in seconds).

`encoder_name_or_path="tiny-random-bert"` ([`TINY_ENCODER`]) selects it in training (`configs/tiny.yaml`, smoke runs)
and the benchmark's `--tiny` mode uses it; the tests build on it through `polyhead.testing_utils`.
"""

from transformers import (
    BertConfig,
    BertTokenizer,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    PreTrainedConfig,
    RobertaConfig,
    XLMRobertaConfig,
)


TINY_ENCODER = "tiny-random-bert"
"""`encoder_name_or_path` preset: the 2-layer, 32-wide random BERT of [`tiny_encoder_config`] and the word-list
tokenizer of [`tiny_tokenizer`] (offline, trains in seconds; for smoke runs and tests)."""
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "i you we they it is was are not very really so too the a an and or but this that movie film phone book food "
    "service love like hate enjoy great good bad terrible awful amazing boring happy sad angry fear joy today day "
    "night time people world news sport game team win lose money market stock price tech science health question "
    "what who where when why how"
).split()
# Common small sizes (transformers' ModelTester style): 2 layers, width 32, 4 heads.
_SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
ENCODER_FAMILIES = ("bert", "distilbert", "roberta", "xlm-roberta", "deberta-v2", "electra")


def tiny_tokenizer() -> BertTokenizer:
    """A WordPiece tokenizer over `WORDS` (built from a dict: `BertTokenizerFast(vocab_file=...)` ignores files)."""
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS + WORDS)}
    tokenizer = BertTokenizer(vocab=vocab, model_max_length=64)
    if len(tokenizer) != len(vocab):
        raise RuntimeError(f"tiny tokenizer has {len(tokenizer)} tokens, expected {len(vocab)}")
    return tokenizer


def tiny_encoder_config(family: str = "bert", vocab_size: int | None = None) -> PreTrainedConfig:
    """A 2-layer, 32-wide random encoder config of one of `ENCODER_FAMILIES`."""
    vocab_size = vocab_size or len(SPECIAL_TOKENS) + len(WORDS)
    common = {"vocab_size": vocab_size, "max_position_embeddings": 80, **_SIZES}
    if family == "bert":
        return BertConfig(**common)
    if family == "distilbert":
        return DistilBertConfig(
            vocab_size=vocab_size, max_position_embeddings=80, dim=32, n_layers=2, n_heads=4, hidden_dim=37
        )
    if family == "roberta":
        return RobertaConfig(**common, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    if family == "xlm-roberta":
        return XLMRobertaConfig(**common, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    if family == "deberta-v2":
        return DebertaV2Config(**common, relative_attention=True, position_buckets=16, pos_att_type=["p2c", "c2p"])
    if family == "electra":
        return ElectraConfig(**common, embedding_size=16)
    raise ValueError(f"Unknown encoder family {family!r}: choose one of {', '.join(ENCODER_FAMILIES)}.")


__all__ = ["ENCODER_FAMILIES", "SPECIAL_TOKENS", "TINY_ENCODER", "WORDS", "tiny_encoder_config", "tiny_tokenizer"]
