"""The text-feature cache key follows the *contents* of the model folder, not its file names and sizes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import graphdel.io as gio
from graphdel.encoders.text import TextEncoderConfig, _model_fingerprint, frozen_cache_key

TEXTS = ["Aspirin is an acetate ester.", "Ethanol is a primary alcohol."]


def model_folder(root: Path, weights: bytes, vocab: bytes = b"[PAD]\n[UNK]\nacid\n",
                 readme: str = "") -> Path:
    """A folder that :func:`resolve_model_path` accepts: config, weights and a vocabulary."""
    root.mkdir(parents=True)
    (root / "config.json").write_text('{"model_type": "bert"}')
    (root / "model.safetensors").write_bytes(weights)
    (root / "vocab.txt").write_bytes(vocab)
    if readme:
        (root / "README.md").write_text(readme)
    return root


def key(folder: Path, **config) -> str:
    return frozen_cache_key(TEXTS, TextEncoderConfig(model=str(folder), **config))


def test_same_names_and_sizes_but_other_weights_give_another_key(tmp_path):
    a = model_folder(tmp_path / "a", b"\x00" * 64)
    b = model_folder(tmp_path / "b", b"\x01" * 64)              # a fine-tuned checkpoint: same size
    # even with identical modification times, only the bytes differ
    for f in ("config.json", "model.safetensors", "vocab.txt"):
        st = (a / f).stat()
        os.utime(b / f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert key(a) != key(b)


def test_another_vocabulary_of_the_same_size_gives_another_key(tmp_path):
    a = model_folder(tmp_path / "a", b"\x00" * 64, vocab=b"[PAD]\n[UNK]\nacid\n")
    b = model_folder(tmp_path / "b", b"\x00" * 64, vocab=b"[PAD]\n[UNK]\nbase\n")
    assert key(a) != key(b)


def test_equal_contents_give_equal_keys_wherever_they_are(tmp_path):
    a = model_folder(tmp_path / "a", b"\x07" * 64)
    b = model_folder(tmp_path / "elsewhere" / "b", b"\x07" * 64, readme="notes")  # docs do not count
    assert key(a) == key(b)
    assert key(a) != key(a, max_length=64)                      # the settings are in the key too
    assert frozen_cache_key(TEXTS[:1], TextEncoderConfig(model=str(a))) != key(a)


def test_each_model_file_is_hashed_once_per_process(tmp_path, monkeypatch):
    hashed: list[str] = []
    real = gio.sha256_file
    monkeypatch.setattr(gio, "sha256_file", lambda p: hashed.append(Path(p).name) or real(p))
    monkeypatch.setattr(gio, "_DIGESTS", {})
    folder = model_folder(tmp_path / "m", b"\x02" * 64)
    first = _model_fingerprint(folder)
    assert sorted(hashed) == ["config.json", "model.safetensors", "vocab.txt"]
    for _ in range(3):
        assert key(folder) == key(folder)
    assert len(hashed) == 3                                     # later keys read no file again
    (folder / "model.safetensors").write_bytes(b"\x03" * 65)   # a new version is hashed again
    assert _model_fingerprint(folder) != first
    assert sorted(hashed) == ["config.json", "model.safetensors", "model.safetensors", "vocab.txt"]


def test_the_sentence_embedding_alone_equals_the_forward_pass_one():
    import torch

    from graphdel.encoders.text import TextEncoder
    from graphdel.models.protocol import TextFeatures

    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 384).half()
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]).bool()
    pooled = torch.randn(3, 384).half()
    frozen = TextEncoder(TextEncoderConfig())
    cached = TextFeatures(hidden, mask, pooled)
    assert torch.equal(frozen.sentence(cached), frozen(cached)[2])
    assert frozen.sentence(cached).dtype == torch.float32
    assert torch.equal(frozen.sentence(cached), pooled.float())
    # without the token states (a texts-only sample) the sentence is the same
    bare = cached.select(torch.tensor([2, 0]), tokens=False)
    assert bare.hidden.shape == (2, 0, 384) and bare.mask.shape == (2, 0)
    assert torch.equal(frozen.sentence(bare), pooled.float()[[2, 0]])
    # no pooled state cached: the tokens stay, and the sentence is their masked mean
    uncached = TextFeatures(hidden, mask)
    assert torch.equal(uncached.select(torch.tensor([1]), tokens=False).hidden, hidden[[1]])
    assert torch.equal(frozen.sentence(uncached), frozen(uncached)[2])
    # a trainable layer: the forward pass's sentence embedding, whatever is cached
    tuned = TextEncoder(TextEncoderConfig(trainable_layers=1)).eval()
    with torch.no_grad():
        assert torch.equal(tuned.sentence(cached), tuned(cached)[2])
        assert not torch.equal(tuned.sentence(cached), pooled.float())


CAPTIONS = ["Aspirin is an acetate ester.", "Ethanol is a primary alcohol found in wine and beer.", "Water.",
            "Caffeine is a purine alkaloid that stimulates the central nervous system of mammals."]


def test_frozen_states_are_streamed_to_the_cache_and_read_back_mapped(monkeypatch):
    import torch

    import graphdel.encoders.text as text
    from tests.mapped_memory import mapped_file

    config = TextEncoderConfig(fusion_tokens=8)
    in_memory = text.encode_frozen(CAPTIONS, config, batch_size=2, use_cache=False, progress=False,
                                   device="cpu")
    # each row is its own text's, wherever its length put it among the batches: as when encoded alone
    for i, caption in enumerate(CAPTIONS):
        alone = text.encode_frozen([caption], config, use_cache=False, progress=False, device="cpu")
        assert torch.equal(alone.mask[0], in_memory.mask[i])
        assert torch.allclose(alone.pooled[0], in_memory.pooled[i], atol=1e-5)
    assert in_memory.mask.sum(1).tolist() == [8, 8, 4, 8]  # "Water." is 4 tokens with [CLS] and [SEP]
    cold = text.encode_frozen(CAPTIONS, config, batch_size=2, progress=False, device="cpu")
    monkeypatch.setattr(text, "load_pretrained",
                        lambda model: pytest.fail("a cached entry must not load the model"))
    warm = text.encode_frozen(CAPTIONS, config, batch_size=2, progress=False, device="cpu")
    for got in (cold, warm):
        for name in ("hidden", "mask", "pooled"):
            assert torch.equal(getattr(got, name), getattr(in_memory, name)), name
        assert mapped_file(got.hidden).endswith("/hidden.npy")  # on disk, not in the process


def test_the_frozen_pass_hands_freed_memory_back_after_every_batch(monkeypatch):
    import graphdel.encoders.text as text

    calls = []
    monkeypatch.setattr(text, "release_freed_memory", lambda: calls.append(1) or True)
    text.encode_frozen(CAPTIONS, TextEncoderConfig(fusion_tokens=8), batch_size=3, use_cache=False,
                       progress=False, device="cpu")
    assert len(calls) == 2  # batches of 3 and 1: glibc would otherwise keep each earlier batch's shape
