"""Tests for tinybert.run.download, against a local HTTP server (never the internet)."""
import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

from tinybert.run.download import CANONICAL_FILES, DownloadError, download, git_blob_sha1, main

REAL_DATA = Path(os.environ.get("DATA_DIR", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))

# Two small files and what `git hash-object` prints for each.
CONTENTS = {"hello.csv": b"hello\n", "world.csv": b"world\n"}
HASHES = {"hello.csv": "ce013625030ba8dba906f756967f9e9ca394464a",
          "world.csv": "cc628ccd10742baea8241c5924df992b5c019f71"}
WRONG_CONTENTS, WRONG_HASH = b"not the real contents\n", "83391f909177c7804491e395f0a03c93f739518d"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder without logging every request to stderr."""

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve the files of CONTENTS from 127.0.0.1; yields (served folder, base URL)."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # a configured proxy must not see local requests
    served = tmp_path / "served"
    served.mkdir()
    for name, content in CONTENTS.items():
        (served / name).write_bytes(content)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=served))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def fetch(dest, base_url, files=HASHES):
    """Run download() and return (paths, progress lines)."""
    lines = []
    paths = download(dest, base_url, files=files, log=lines.append)
    return paths, lines


def test_git_blob_sha1_matches_git(tmp_path):
    empty, hello = tmp_path / "empty", tmp_path / "hello"
    empty.write_bytes(b"")
    hello.write_bytes(b"hello\n")
    assert git_blob_sha1(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_sha1(hello) == HASHES["hello.csv"]


@pytest.mark.parametrize("name", ["ids-sst-train.csv", "ids-sst-dev.csv", "ids-sst-test-student.csv",
                                  "sts-train.csv", "sts-dev.csv", "sts-test-student.csv"])
def test_hash_table_matches_the_canonical_files_on_disk(name):
    if not (REAL_DATA / name).is_file():
        pytest.fail(f"real data file {REAL_DATA / name} not found: set DATA_DIR to the folder holding them")
    assert git_blob_sha1(REAL_DATA / name) == CANONICAL_FILES[name]


def test_downloads_and_verifies_every_file(server, tmp_path):
    _, base_url = server
    dest = tmp_path / "data" / "nested"
    paths, lines = fetch(dest, base_url.rstrip("/"))  # a missing final slash is added
    assert paths == [dest / "hello.csv", dest / "world.csv"]
    assert [p.read_bytes() for p in paths] == [CONTENTS["hello.csv"], CONTENTS["world.csv"]]
    assert sorted(p.name for p in dest.iterdir()) == ["hello.csv", "world.csv"]  # no temporary files left
    assert len(lines) == 2 and all("downloaded" in line for line in lines)


def test_files_already_present_are_skipped(server, tmp_path):
    served, base_url = server
    dest = tmp_path / "data"
    fetch(dest, base_url)
    for path in served.iterdir():  # a second download would now fail
        path.unlink()
    _, lines = fetch(dest, base_url)
    assert lines == ["hello.csv: already present", "world.csv: already present"]


def test_a_present_file_with_wrong_contents_is_replaced(server, tmp_path):
    _, base_url = server
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "hello.csv").write_bytes(WRONG_CONTENTS)
    _, lines = fetch(dest, base_url)
    assert (dest / "hello.csv").read_bytes() == CONTENTS["hello.csv"]
    assert lines[0].startswith("hello.csv: downloaded")


def test_hash_mismatch_names_file_and_both_hashes_and_leaves_nothing(server, tmp_path):
    served, base_url = server
    (served / "hello.csv").write_bytes(WRONG_CONTENTS)
    dest = tmp_path / "data"
    with pytest.raises(DownloadError) as caught:
        fetch(dest, base_url)
    message = str(caught.value)
    assert message.startswith("hello.csv:") and HASHES["hello.csv"] in message and WRONG_HASH in message
    assert "\n" not in message
    assert list(dest.iterdir()) == []


def test_http_404_names_the_url(server, tmp_path):
    _, base_url = server
    dest = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"missing\.csv: HTTP 404"):
        fetch(dest, base_url, files={"missing.csv": HASHES["hello.csv"]})
    assert list(dest.iterdir()) == []


def test_unreachable_server_is_a_download_error(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    # Port 9 (discard) on the loopback address: refused at once, never the internet.
    with pytest.raises(DownloadError, match="127.0.0.1:9/hello.csv"):
        fetch(tmp_path, "http://127.0.0.1:9/")


def test_command_line_success_and_failure(server, tmp_path, monkeypatch, capsys):
    served, base_url = server
    monkeypatch.setattr("tinybert.run.download.CANONICAL_FILES", HASHES)
    dest = tmp_path / "data"
    assert main(["--dest", str(dest), "--base-url", base_url]) == 0
    assert "hello.csv: downloaded" in capsys.readouterr().out

    (dest / "world.csv").unlink()
    (served / "world.csv").write_bytes(WRONG_CONTENTS)
    assert main(["--dest", str(dest), "--base-url", base_url]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: world.csv: wrong contents") and error.count("\n") == 1
