"""The GPT-2 tokenizer: the ranks shipped in the package, overrides, the sha256 check, one-line refusals,
and never a download."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

import trainer.data.tokenizer as tokenizer
from trainer.errors import TokenizerError
from trainer.data.tokenizer import EOT, R50K_SHA256, SHIPPED_FILE, encode_document, get_encoding, tokenizer_info


@pytest.fixture
def no_download(monkeypatch):
    """Any attempt by tiktoken to fetch or cache ranks fails the test; the memo starts empty."""
    import tiktoken.load

    def refuse(*args, **kwargs):
        raise AssertionError(f"tiktoken was asked to download or cache ranks: {args}")

    monkeypatch.setattr(tiktoken.load, "read_file", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", refuse)
    monkeypatch.setattr(tokenizer.tiktoken, "get_encoding", refuse)
    monkeypatch.setattr(tokenizer, "_cache", {})
    monkeypatch.delenv("FWTUI_TOKENIZER_FILE", raising=False)


def test_shipped_ranks_are_r50k_base_with_their_licence():
    assert SHIPPED_FILE.is_file() and SHIPPED_FILE.stat().st_size == 835_554
    assert hashlib.sha256(SHIPPED_FILE.read_bytes()).hexdigest() == R50K_SHA256
    licence = (SHIPPED_FILE.parent / "LICENSE").read_text(encoding="utf-8")
    assert "Copyright (c) 2022 OpenAI, Shantanu Jain" in licence and "Modified MIT License" in licence
    assert R50K_SHA256 in (SHIPPED_FILE.parent / "README.md").read_text(encoding="utf-8")


def test_no_setting_loads_the_shipped_ranks_without_a_download(no_download):
    encoding = get_encoding()
    assert encoding.name == "r50k_base"
    assert encoding.n_vocab == 50257
    assert encoding.encode_ordinary("Hello world") == [15496, 995]  # GPT-2's well-known ids
    assert encoding.encode("<|endoftext|>", allowed_special="all") == [EOT]
    assert get_encoding() is encoding and get_encoding(SHIPPED_FILE) is encoding  # built once
    assert tokenizer_info().source == str(SHIPPED_FILE)


def test_parsed_ranks_equal_tiktokens_own_loader():
    from tiktoken.load import load_tiktoken_bpe

    assert tokenizer.parse_ranks(SHIPPED_FILE.read_bytes()) == load_tiktoken_bpe(str(SHIPPED_FILE))


def test_environment_variable_overrides_the_shipped_file(no_download, monkeypatch, tmp_path):
    copy = shutil.copy(SHIPPED_FILE, tmp_path / "r50k_base.tiktoken")
    monkeypatch.setenv("FWTUI_TOKENIZER_FILE", str(copy))
    assert tokenizer_info().source == str(copy.resolve())
    assert get_encoding() is get_encoding(copy) and get_encoding() is not get_encoding(SHIPPED_FILE)


def test_wrong_file_is_refused_by_sha256(tmp_path):
    fake = tmp_path / "r50k_base.tiktoken"
    fake.write_bytes(SHIPPED_FILE.read_bytes()[:-100])  # truncated: parses, but is not the real ranks
    with pytest.raises(TokenizerError, match=r"sha256 .* not r50k_base's") as err:
        get_encoding(fake)
    assert str(fake) in str(err.value) and "\n" not in str(err.value)
    assert "--tokenizer-file" in str(err.value)


def test_missing_file_is_one_line_naming_the_fix(tmp_path):
    with pytest.raises(TokenizerError, match="--tokenizer-file") as err:
        get_encoding(tmp_path / "nowhere.tiktoken")
    assert "\n" not in str(err.value)


def test_damaged_shipped_file_says_reinstall(no_download, monkeypatch, tmp_path):
    damaged = tmp_path / "assets" / "r50k_base.tiktoken"
    damaged.parent.mkdir()
    damaged.write_bytes(SHIPPED_FILE.read_bytes()[:1000])
    monkeypatch.setattr(tokenizer, "SHIPPED_FILE", damaged)
    with pytest.raises(TokenizerError, match="reinstall fwtui") as err:
        get_encoding()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text", [
    "plain English text, with punctuation!",
    "a literal <|endoftext|> inside a web page",
    "NUL \x00 bytes and tabs\t and\r\nnewlines",
    "unicode: naïve café — 日本語 🙂",
    "lone surrogate \ud800 here",
    "",
    "a" * 5000,
])
def test_encode_document_equals_encode_ordinary(text):
    encoding = get_encoding()
    tokens = encode_document(encoding, text)
    assert tokens.dtype == np.uint32
    assert tokens.tolist() == encoding.encode_ordinary(text)
