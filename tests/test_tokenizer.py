"""The GPT-2 tokenizer: the offline ranks file, its sha256 check, and the one message when there is none."""

from __future__ import annotations

import numpy as np
import pytest

import trainer.tokenizer as tokenizer
from trainer.errors import TokenizerError
from trainer.tokenizer import EOT, encode_document, get_encoding, tokenizer_info

from conftest import TOKENIZER_FILE

pytestmark = pytest.mark.skipif(not TOKENIZER_FILE.is_file(), reason="../shared/tokenizers/r50k_base.tiktoken absent")


def test_offline_file_loads_gpt2_ranks_once():
    encoding = get_encoding(TOKENIZER_FILE)
    assert encoding.name == "r50k_base"
    assert encoding.n_vocab == 50257
    assert encoding.encode_ordinary("Hello world") == [15496, 995]  # GPT-2's well-known ids
    assert encoding.encode("<|endoftext|>", allowed_special="all") == [EOT]
    assert get_encoding(TOKENIZER_FILE) is encoding  # cached per file


def test_environment_variable_names_the_file(monkeypatch):
    monkeypatch.setenv("FWTUI_TOKENIZER_FILE", str(TOKENIZER_FILE))
    assert get_encoding() is get_encoding(TOKENIZER_FILE)
    assert tokenizer_info().source == str(TOKENIZER_FILE.resolve())


def test_wrong_file_is_refused_by_sha256(tmp_path):
    fake = tmp_path / "r50k_base.tiktoken"
    fake.write_bytes(TOKENIZER_FILE.read_bytes()[:-100])  # truncated: parses, but is not the real ranks
    with pytest.raises(TokenizerError, match=r"sha256 .* not r50k_base's") as err:
        get_encoding(fake)
    assert str(fake) in str(err.value) and "\n" not in str(err.value)


def test_missing_file_is_one_line_naming_the_fix(tmp_path):
    with pytest.raises(TokenizerError, match="--tokenizer-file"):
        get_encoding(tmp_path / "nowhere.tiktoken")


def test_no_file_and_no_download_names_both_fixes(monkeypatch):
    monkeypatch.delenv("FWTUI_TOKENIZER_FILE", raising=False)
    monkeypatch.setattr(tokenizer, "_cache", {})

    def offline(name):
        raise ConnectionError("Failed to resolve openaipublic.blob.core.windows.net")

    monkeypatch.setattr(tokenizer.tiktoken, "get_encoding", offline)
    with pytest.raises(TokenizerError) as err:
        get_encoding()
    message = str(err.value)
    assert "--tokenizer-file" in message and "FWTUI_TOKENIZER_FILE" in message and "internet" in message
    assert "\n" not in message


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
    encoding = get_encoding(TOKENIZER_FILE)
    tokens = encode_document(encoding, text)
    assert tokens.dtype == np.uint32
    assert tokens.tolist() == encoding.encode_ordinary(text)
