"""Instruction encoders: MiniLM offline with its cache, the vocabulary baseline."""

from __future__ import annotations

import torch

from vla.models.config import LanguageConfig
from vla.models.language import PretrainedTextEncoder, VocabEncoder, build_vocab

CPU = torch.device("cpu")


def test_models_minilm_similar_sentences_embed_closer() -> None:
    enc = PretrainedTextEncoder(LanguageConfig(kind="minilm"))
    texts = [
        "put the red block in the blue bowl",
        "place the red cube into the blue bowl",
        "what is the weather like in paris today",
    ]
    out = enc(texts, CPU)
    assert out.sentence.shape == (3, 384)
    s = out.sentence @ out.sentence.T  # unit vectors: cosine similarity
    assert s[0, 1] > s[0, 2] + 0.2
    assert torch.allclose(out.sentence.norm(dim=-1), torch.ones(3), atol=1e-4)
    assert out.tokens.shape[:2] == out.mask.shape and out.tokens.shape[-1] == 384


def test_models_minilm_caches_per_instruction() -> None:
    enc = PretrainedTextEncoder(LanguageConfig(kind="minilm"))
    a = enc(["stack the green block on the red block"], CPU)
    n = len(enc._cache)
    b = enc(["stack the green block on the red block"] * 3, CPU)
    assert len(enc._cache) == n
    assert torch.equal(b.sentence[2], a.sentence[0])
    assert not any(p.requires_grad for p in enc._frozen.parameters())
    assert list(enc.state_dict()) == []  # frozen weights stay out of checkpoints


def test_models_vocab_encoder_tells_word_order_apart() -> None:
    vocab = build_vocab(["Put the red block in the blue bowl.", "push the blue block"])
    assert vocab == ("block", "blue", "bowl", "in", "push", "put", "red", "the")
    enc = VocabEncoder(LanguageConfig(kind="vocab", vocab=vocab, embed_dim=16))
    out = enc(["put the red block in the blue bowl", "put the blue block in the red bowl", "zebra"], CPU)
    assert out.sentence.shape == (3, 16)
    assert not torch.allclose(out.sentence[0], out.sentence[1])
    assert enc.ids(["zebra"]).tolist() == [[VocabEncoder.UNK]]


def test_models_any_local_transformers_text_encoder(tmp_path) -> None:
    """language.kind='hf' loads a text encoder from a local directory (a tiny BERT the test saves)."""
    import shutil

    from transformers import BertConfig, BertModel

    from vla.models.language import minilm_path

    d = tmp_path / "tiny_bert"
    cfg = BertConfig(
        vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    )
    BertModel(cfg).save_pretrained(str(d), safe_serialization=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_path() / name, d / name)
    enc = PretrainedTextEncoder(LanguageConfig(kind="hf", pretrained_path=str(d)))
    out = enc(["pick up the cube", "push the bowl left"], CPU)
    assert enc.out_dim == 16 and out.sentence.shape == (2, 16)
    assert not torch.allclose(out.sentence[0], out.sentence[1])


def test_models_trainable_minilm_is_a_private_copy() -> None:
    a = PretrainedTextEncoder(LanguageConfig(kind="minilm", trainable=True))
    b = PretrainedTextEncoder(LanguageConfig(kind="minilm", trainable=True))
    pa, pb = next(a.parameters()), next(b.parameters())
    assert pa.requires_grad and pa.data_ptr() != pb.data_ptr()
    assert len(a.state_dict()) > 0  # fine-tuned weights are saved with the policy
    out = a(["pick up the red block"], CPU)
    out.sentence.sum().backward()
    assert pa.grad is not None and pb.grad is None
