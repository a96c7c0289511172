"""Tiny random encoders and tokenizers for tests, smoke runs and the benchmark's `--tiny` mode (offline, seconds)."""

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

from polyhead_remote.configuration_multitask import MultitaskConfig


SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = (
    "i you we they it is was are not very really so too the a an and or but this that movie film phone book food "
    "service love like hate enjoy great good bad terrible awful amazing boring happy sad angry fear joy today day "
    "night time people world news sport game team win lose money market stock price tech science health question "
    "what who where when why how"
).split()
TINY_TASKS = {
    "sentiment": {"labels": ["negative", "positive"]},
    "topic": {"labels": ["movies", "tech", "sport", "money"]},
    "emotions": {
        "labels": ["anger", "fear", "joy", "sadness"],
        "problem_type": "multi_label_classification",
        "threshold": 0.4,
    },
}
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


def tiny_multitask_config(family: str = "bert", tasks: dict | None = None, **kwargs) -> MultitaskConfig:
    """A `MultitaskConfig` over a tiny encoder with `TINY_TASKS` (binary, 4-way, 4-label multi-label)."""
    return MultitaskConfig(encoder=tiny_encoder_config(family), tasks=tasks or TINY_TASKS, **kwargs)
