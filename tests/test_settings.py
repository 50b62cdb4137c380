"""Settings: defaults, CITEDESK_* env vars, TOML file, precedence and validation (no model)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from citedesk.config.settings import DEFAULT_EMBEDDING_MODEL, Settings, load_settings

TOML = """
workspace = "acme"
data_dir = "/srv/citedesk"

[qdrant]
url = "http://qdrant.internal:6333"
collection = "kb"
write_batch = 16

[retrieval]
mode = "dense"
top_k = 7

[answer]
threshold_chat = 0.4
threshold_voice = 0.8

[llm]
base_url = "http://llm.internal:8000/v1"
api_key = "sk-toml"

[intercom]
locales = ["en", "fr"]
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No CITEDESK_* variable from the outer environment; CITEDESK_CONFIG restored after each test.

    ``load_settings(path)`` writes ``os.environ["CITEDESK_CONFIG"]``: setting it here first makes
    monkeypatch remember (and restore) its previous state, whatever the code under test does.
    """
    for name in [n for n in os.environ if n.startswith("CITEDESK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CITEDESK_CONFIG", "")


@pytest.fixture()
def toml_file(tmp_path) -> Path:
    path = tmp_path / "citedesk.toml"
    path.write_text(TOML, encoding="utf-8")
    return path


def test_defaults() -> None:
    s = load_settings()
    assert s.data_dir == Path(".citedesk") and s.workspace == "default"
    assert s.qdrant.url is None and s.qdrant.path is None and s.qdrant.collection == "citedesk"
    assert s.embedding.model == DEFAULT_EMBEDDING_MODEL and s.embedding.device == "auto"
    assert s.retrieval.mode == "hybrid" and s.retrieval.top_k == 5 and s.retrieval.rerank_model is None
    assert s.answer.generator == "extractive"
    assert s.answer.threshold_chat is None and s.answer.threshold_voice is None  # the reader's calibrated values
    assert s.llm.base_url is None
    assert s.intercom.token is None and s.intercom.locales is None
    assert s.folder.path is None and s.folder.base_url is None
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8000)


def test_env_vars_with_prefix_and_nesting(monkeypatch) -> None:
    monkeypatch.setenv("CITEDESK_QDRANT__URL", "http://qdrant:6333")
    monkeypatch.setenv("CITEDESK_QDRANT__API_KEY", "secret-key")
    monkeypatch.setenv("CITEDESK_ANSWER__THRESHOLD_VOICE", "0.75")
    monkeypatch.setenv("CITEDESK_WORKSPACE", "acme")
    monkeypatch.setenv("CITEDESK_DATA_DIR", "/var/lib/citedesk")
    monkeypatch.setenv("CITEDESK_SERVER__PORT", "9001")
    monkeypatch.setenv("CITEDESK_INTERCOM__LOCALES", '["en", "de"]')
    s = load_settings()
    assert s.qdrant.url == "http://qdrant:6333"
    assert s.qdrant.api_key is not None and s.qdrant.api_key.get_secret_value() == "secret-key"
    assert "secret-key" not in repr(s)  # secrets are masked
    assert s.answer.threshold_voice == 0.75
    assert s.answer.threshold_chat is None  # sibling keeps its default
    assert s.workspace == "acme" and s.data_dir == Path("/var/lib/citedesk")
    assert s.server.port == 9001
    assert s.intercom.locales == ["en", "de"]


def test_env_var_without_prefix_is_ignored(monkeypatch) -> None:
    monkeypatch.setenv("WORKSPACE", "nope")
    monkeypatch.setenv("QDRANT__URL", "http://nope:6333")
    s = load_settings()
    assert s.workspace == "default" and s.qdrant.url is None


def test_env_value_out_of_range_is_rejected(monkeypatch) -> None:
    monkeypatch.setenv("CITEDESK_ANSWER__THRESHOLD_CHAT", "1.5")
    with pytest.raises(ValidationError, match="threshold_chat"):
        load_settings()


def test_toml_file_with_nested_tables(toml_file) -> None:
    s = load_settings(toml_file)
    assert s.workspace == "acme" and s.data_dir == Path("/srv/citedesk")
    assert s.qdrant.url == "http://qdrant.internal:6333"
    assert s.qdrant.collection == "kb" and s.qdrant.write_batch == 16
    assert s.qdrant.timeout == 10.0  # unspecified nested key keeps its default
    assert s.retrieval.mode == "dense" and s.retrieval.top_k == 7
    assert (s.answer.threshold_chat, s.answer.threshold_voice) == (0.4, 0.8)
    assert s.llm.base_url == "http://llm.internal:8000/v1"
    assert s.llm.api_key.get_secret_value() == "sk-toml"
    assert s.intercom.locales == ["en", "fr"]


def test_toml_file_from_citedesk_config_env(monkeypatch, toml_file) -> None:
    monkeypatch.setenv("CITEDESK_CONFIG", str(toml_file))
    s = load_settings()
    assert s.workspace == "acme" and s.qdrant.collection == "kb"


def test_env_beats_toml_and_merges_nested(monkeypatch, toml_file) -> None:
    monkeypatch.setenv("CITEDESK_QDRANT__URL", "http://from-env:6333")
    monkeypatch.setenv("CITEDESK_ANSWER__THRESHOLD_VOICE", "0.9")
    monkeypatch.setenv("CITEDESK_WORKSPACE", "env-ws")
    s = load_settings(toml_file)
    assert s.qdrant.url == "http://from-env:6333"
    assert s.qdrant.collection == "kb"  # same table, key only in TOML: kept
    assert s.answer.threshold_voice == 0.9 and s.answer.threshold_chat == 0.4
    assert s.workspace == "env-ws"


def test_overrides_beat_env_and_toml(monkeypatch, toml_file) -> None:
    monkeypatch.setenv("CITEDESK_WORKSPACE", "env-ws")
    s = load_settings(toml_file, workspace="explicit")
    assert s.workspace == "explicit"


def test_openai_generator_needs_llm_base_url(monkeypatch) -> None:
    monkeypatch.setenv("CITEDESK_ANSWER__GENERATOR", "openai")
    with pytest.raises(ValidationError) as info:
        load_settings()
    assert "answer.generator=openai needs llm.base_url" in str(info.value)
    assert "CITEDESK_LLM__BASE_URL" in str(info.value)  # tells the user which variable to set
    monkeypatch.setenv("CITEDESK_LLM__BASE_URL", "http://127.0.0.1:8080/v1")
    s = load_settings()
    assert s.answer.generator == "openai" and s.llm.base_url == "http://127.0.0.1:8080/v1"


def test_openai_generator_with_base_url_in_toml(monkeypatch, toml_file) -> None:
    monkeypatch.setenv("CITEDESK_ANSWER__GENERATOR", "openai")
    assert load_settings(toml_file).answer.generator == "openai"


def test_unknown_generator_is_rejected(monkeypatch) -> None:
    monkeypatch.setenv("CITEDESK_ANSWER__GENERATOR", "gpt-magic")
    with pytest.raises(ValidationError, match="generator"):
        load_settings()


def test_unknown_top_level_key_rejected_as_override() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Settings(bogus=1)


def test_unknown_top_level_key_rejected_in_toml(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('workspace = "acme"\nworkspaec = "typo"\n', encoding="utf-8")
    with pytest.raises(ValidationError, match="workspaec"):
        load_settings(path)


def test_unknown_nested_key_rejected_in_toml(tmp_path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("[answer]\nthreshhold_chat = 0.9\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="threshhold_chat"):
        load_settings(path)


def test_missing_config_file_raises_file_not_found(tmp_path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(FileNotFoundError, match="nope.toml"):
        load_settings(missing)
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path)  # a directory is not a config file


def test_invalid_toml_is_an_error(tmp_path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[qdrant\nurl = \n", encoding="utf-8")
    with pytest.raises(ValueError):  # tomllib.TOMLDecodeError
        load_settings(path)


def test_load_settings_has_no_lasting_effect_on_environment(toml_file) -> None:
    os.environ.pop("CITEDESK_CONFIG", None)  # restored by the clean_env fixture
    load_settings(toml_file)
    assert os.environ.get("CITEDESK_CONFIG") is None
    assert load_settings().workspace == "default"


def test_old_intercom_middleware_section_still_loads_as_drafts(tmp_path, monkeypatch) -> None:
    """0.1 configs name the chat-draft section ``intercom.middleware``: they keep working, with a warning."""
    import warnings

    from citedesk.config.settings import IntercomSettings, load_settings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = IntercomSettings(middleware={"mode": "reply", "help_center_domains": [" .Help.Acme.com "]})
    assert old.drafts.mode == "reply" and old.drafts.help_center_domains == ["help.acme.com"]
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    monkeypatch.setenv("CITEDESK_INTERCOM__MIDDLEWARE__WORKERS", "3")
    assert load_settings(None).intercom.drafts.workers == 3
    with pytest.raises(ValueError, match="old name"):
        IntercomSettings(middleware={}, drafts={})
