"""image_col=: URLs and local files into image_url content parts, per-row errors, the request hash."""

from __future__ import annotations

import base64
import math

import pandas as pd
import pytest

from batchframe import ConfigError
from batchframe.rows.messages import row_messages
from batchframe.rows.images import IMAGE_ERROR, MAX_IMAGE_BYTES, RowError, image_url
from batchframe.rows.requests import RequestSpec
from batchframe.simulator import Simulator
from batchframe.simulator._responder import default_responder

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 16
GIF = b"GIF89a" + b"\x00" * 16
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 " + b"\x00" * 16


@pytest.fixture
def images(tmp_path):
    files = {"a.png": PNG, "photo.jpg": JPEG, "anim.gif": GIF, "pic.webp": WEBP,
             "mislabeled.png": JPEG, "notes.txt": b"hello", "noext": PNG}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder").mkdir()
    return tmp_path


@pytest.mark.parametrize("name,mime", [
    ("a.png", "image/png"),
    ("photo.jpg", "image/jpeg"),
    ("anim.gif", "image/gif"),
    ("pic.webp", "image/webp"),
    ("mislabeled.png", "image/jpeg"),  # the bytes decide, not the extension
    ("noext", "image/png"),
])
def test_local_files_become_data_urls_with_their_type(images, name, mime):
    url = image_url(str(images / name))
    assert url.startswith(f"data:{mime};base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == (images / name).read_bytes()
    assert image_url(images / name) == url  # a Path works too


@pytest.mark.parametrize("value,expected", [
    ("https://example.com/cat.jpg", "https://example.com/cat.jpg"),
    ("  http://example.com/a.png ", "http://example.com/a.png"),
    ("data:image/png;base64,AAAA", "data:image/png;base64,AAAA"),
    (None, None), (float("nan"), None), (pd.NA, None), ("", None), ("   ", None),
])
def test_urls_pass_through_and_missing_means_text_only(value, expected):
    assert image_url(value) == expected


@pytest.mark.parametrize("name,fragment", [
    ("missing.png", "not found"),
    ("folder", "directory"),
    ("notes.txt", "not a supported image"),
])
def test_unusable_files_are_row_errors(images, name, fragment):
    err = image_url(str(images / name))
    assert isinstance(err, RowError) and err.code == IMAGE_ERROR and fragment in err


def test_too_large_is_a_row_error_and_bytes_are_accepted():
    big = image_url("/x/huge.png", read=lambda p: PNG + b"\x00" * MAX_IMAGE_BYTES)
    assert isinstance(big, RowError) and "limit" in big
    assert image_url(PNG).startswith("data:image/png;base64,")


@pytest.mark.parametrize("value", [3, 2.5, ["a.png"], {"url": "x"}])
def test_other_values_are_config_errors(value):
    with pytest.raises(ConfigError, match="image_col"):
        image_url(value)


def test_row_messages_builds_image_then_text_parts(images):
    df = pd.DataFrame({"q": ["What is it?", "Plain", "Broken", None],
                       "img": [str(images / "a.png"), math.nan, str(images / "gone.png"), "https://x/y.png"]})
    msgs, errors = row_messages(df, prompt_col="q", template=None, messages_col=None,
                                system="Be brief.", image_col="img")
    assert msgs[0][0] == {"role": "system", "content": "Be brief."}
    parts = msgs[0][1]["content"]
    assert parts[0]["type"] == "image_url" and parts[0]["image_url"]["url"].startswith("data:image/png")
    assert parts[1] == {"type": "text", "text": "What is it?"}
    assert msgs[1] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Plain"}]
    assert msgs[2] is None and "not found" in errors[2] and errors[2].code == IMAGE_ERROR
    assert msgs[3] is None and errors[3].startswith("empty prompt")  # no text: still an empty prompt


def test_template_works_with_images_and_messages_col_does_not(images):
    df = pd.DataFrame({"name": ["a"], "img": [str(images / "a.png")], "m": [[{"role": "user", "content": "x"}]]})
    msgs, _ = row_messages(df, prompt_col=None, template="Describe {name}", messages_col=None,
                           system=None, image_col="img")
    assert msgs[0][0]["content"][1]["text"] == "Describe a"
    with pytest.raises(ConfigError, match="messages_col"):
        row_messages(df, prompt_col=None, template=None, messages_col="m", system=None, image_col="img")
    with pytest.raises(ConfigError, match="not a column"):
        row_messages(df, prompt_col="name", template=None, messages_col=None, system=None, image_col="nope")


def test_the_image_is_in_the_request_hash(images):
    rid = RequestSpec(base_url="http://x/v1", model="qwen3-vl-plus").hasher()

    def hash_with(path):
        df = pd.DataFrame({"q": ["What is it?"], "img": [path]})
        msgs, _ = row_messages(df, prompt_col="q", template=None, messages_col=None, system=None,
                               image_col="img")
        return rid(msgs[0])

    assert hash_with(str(images / "a.png")) != hash_with(str(images / "photo.jpg"))
    assert hash_with(str(images / "a.png")) != hash_with(None)
    assert hash_with(str(images / "a.png")) == hash_with(str(images / "noext"))  # same bytes, same request


def test_end_to_end_against_the_simulator(images):
    seen = []

    def responder(body):
        seen.append(body)
        return default_responder(body)

    df = pd.DataFrame({"q": ["What is this?", "And this?", "Text only", "Missing"],
                       "img": [str(images / "a.png"), "https://example.com/a.jpg", None,
                               str(images / "missing.png")]})
    with Simulator(responder=responder) as sim:
        out = df.batchchat.complete(prompt_col="q", image_col="img", model="qwen3-vl-plus",
                                    base_url=sim.base_url, progress=False)
        assert sim.stats()["requests"] == 3  # the broken row sent nothing
    assert list(out.columns[:2]) == ["q", "img"] and "__batchframe_messages__" not in out.columns
    assert out["status"].tolist() == ["ok", "ok", "ok", "failed"]
    assert out.loc[3, "error_code"] == IMAGE_ERROR and "not found" in out.loc[3, "error"]
    assert out.attrs["batchframe"]["errors"] == {IMAGE_ERROR: 1}
    # the simulator charges a flat amount per image part, so image rows cost more input tokens
    assert out.loc[0, "prompt_tokens"] > out.loc[2, "prompt_tokens"] + 200
    by_text = {b["messages"][-1]["content"][-1]["text"] if isinstance(b["messages"][-1]["content"], list)
               else b["messages"][-1]["content"]: b for b in seen}
    sent = by_text["What is this?"]["messages"][0]["content"]
    assert sent[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert by_text["And this?"]["messages"][0]["content"][0]["image_url"]["url"] == "https://example.com/a.jpg"
    assert by_text["Text only"]["messages"][0]["content"] == "Text only"


def test_changing_an_image_reruns_only_that_row(images, tmp_path):
    (tmp_path / "b.png").write_bytes(PNG)
    df = pd.DataFrame({"q": ["one", "two"], "img": [str(images / "a.png"), str(tmp_path / "b.png")]})
    ck = tmp_path / "ck"
    with Simulator() as sim:
        kw = dict(prompt_col="q", image_col="img", model="qwen3-vl-flash", base_url=sim.base_url,
                  progress=False, checkpoint=ck)
        df.batchchat.complete(**kw)
        assert sim.stats()["requests"] == 2
        df.batchchat.complete(**kw)
        assert sim.stats()["requests"] == 2  # unchanged: nothing sent
        (tmp_path / "b.png").write_bytes(JPEG)
        out = df.batchchat.complete(**kw)
        assert sim.stats()["requests"] == 3  # only the row whose image changed
    assert (out["status"] == "ok").all()
