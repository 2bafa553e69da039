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
    files, quora = serve_synthetic_canonical_files(served)
    monkeypatch.setattr("tinybert.run.download.CANONICAL_FILES", files)
    monkeypatch.setattr("tinybert.run.download.PROJECT_QUORA_FILES", quora)
    monkeypatch.setattr("tinybert.run.download.QUORA_TRAIN_PAIRS", 3)
    dest = tmp_path / "data"
    assert main(["--dest", str(dest), "--base-url", base_url]) == 0
    out = capsys.readouterr().out
    assert "canonical/ids-sst-train.csv: downloaded" in out and "quora-train.csv: 3 pairs of quora-dev.csv" in out
    assert out.endswith(f"the course's 8 files are in {dest} (DATA_DIR), the 9 canonical ones in {dest / 'canonical'}\n")

    (dest / "canonical" / "sts-dev.csv").unlink()
    (served / "sts-dev.csv").write_bytes(WRONG_CONTENTS)
    assert main(["--dest", str(dest), "--base-url", base_url]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: sts-dev.csv: wrong contents") and error.count("\n") == 1


# ---------------------------------------------------------------- the course's folder: prepare, the Quora split
QUORA_HEADER = b"\tid\tsentence1\tsentence2\tis_duplicate\n"
QUORA_ROWS = [b"0\ta1\tHow do I learn?\tHow can I learn?\t1.0\n",
              b"1\tb2\tA \"quoted\ttab\" here\tA carriage\rreturn inside\t0.0\n",   # \r: not a line end
              b"2\tc3\t leading space\tno label\t\n",
              b"3\td4\tWhat is X?\tWhat is Y?\t0.0\n",
              b"4\te5\tlast row\tno final newline\t1.0"]
SYNTHETIC_QUORA_DEV = QUORA_HEADER + b"".join(QUORA_ROWS)


def blob_sha1(content: bytes) -> str:
    """What `git hash-object` prints for ``content``, computed here independently of the module."""
    import hashlib
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@pytest.mark.parametrize("train_pairs", [1, 3, 4])
def test_split_quora_cuts_at_newlines_after_the_header(train_pairs):
    from tinybert.run.download import split_quora
    train, dev = split_quora(SYNTHETIC_QUORA_DEV, train_pairs)
    assert train == QUORA_HEADER + b"".join(QUORA_ROWS[:train_pairs])
    assert dev == QUORA_HEADER + b"".join(QUORA_ROWS[train_pairs:])
    assert train + dev[len(QUORA_HEADER):] == SYNTHETIC_QUORA_DEV          # disjoint, nothing lost, order kept
    assert split_quora(SYNTHETIC_QUORA_DEV, train_pairs) == (train, dev)  # deterministic


def test_split_quora_refuses_a_file_too_short_for_the_split():
    from tinybert.run.download import split_quora
    for content, pairs in ((SYNTHETIC_QUORA_DEV, 5), (QUORA_HEADER, 0), (b"", 0)):
        with pytest.raises(DownloadError, match=f"quora-dev.csv: {pairs} pairs, but the split needs more than"):
            split_quora(content, 5 if content else 1)


def test_carve_quora_checks_each_file_and_leaves_nothing_on_a_mismatch(tmp_path):
    from tinybert.run.download import carve_quora
    source = tmp_path / "canonical-quora-dev.csv"
    source.write_bytes(SYNTHETIC_QUORA_DEV)
    expected = {"quora-train.csv": blob_sha1(QUORA_HEADER + b"".join(QUORA_ROWS[:3])),
                "quora-dev.csv": blob_sha1(QUORA_HEADER + b"".join(QUORA_ROWS[3:]))}
    lines = []
    paths = carve_quora(source, tmp_path / "out", expected, train_pairs=3, log=lines.append)
    assert [git_blob_sha1(path) for path in paths] == list(expected.values())
    assert lines == ["quora-train.csv: 3 pairs of canonical-quora-dev.csv, SHA-1 ok",
                     "quora-dev.csv: 2 pairs of canonical-quora-dev.csv, SHA-1 ok"]
    lines.clear()
    carve_quora(source, tmp_path / "out", expected, train_pairs=3, log=lines.append)
    assert lines == ["quora-train.csv: already present", "quora-dev.csv: already present"]
    with pytest.raises(DownloadError, match="quora-train.csv: wrong contents"):
        carve_quora(source, tmp_path / "other", expected, train_pairs=2)
    assert list((tmp_path / "other").iterdir()) == []


def serve_synthetic_canonical_files(served):
    """Small stand-ins for the nine canonical files in the served folder; returns their
    {name: git SHA-1} and the {name: git SHA-1} of their Quora split at 3 training pairs."""
    from tinybert.run.download import CANONICAL_FILES
    files = {}
    for name in CANONICAL_FILES:
        content = SYNTHETIC_QUORA_DEV if name == "quora-dev.csv" else f"\tid\tstand-in for {name}\n".encode()
        (served / name).write_bytes(content)
        files[name] = blob_sha1(content)
    quora = {"quora-train.csv": blob_sha1(QUORA_HEADER + b"".join(QUORA_ROWS[:3])),
             "quora-dev.csv": blob_sha1(QUORA_HEADER + b"".join(QUORA_ROWS[3:]))}
    return files, quora


COURSE_FOLDER = sorted(["ids-sst-train.csv", "ids-sst-dev.csv", "ids-sst-test-student.csv", "sts-train.csv",
                        "sts-dev.csv", "sts-test-student.csv", "quora-train.csv", "quora-dev.csv", "canonical"])


def test_prepare_makes_the_course_folder_in_one_go(server, tmp_path):
    from tinybert.run.download import prepare
    served, base_url = server
    files, quora = serve_synthetic_canonical_files(served)
    dest = tmp_path / "data"
    lines = []
    paths = prepare(dest, base_url, files=files, expected_quora=quora, train_pairs=3, log=lines.append)
    assert sorted(path.name for path in dest.iterdir()) == COURSE_FOLDER                 # no Quora test file
    assert sorted(path.name for path in paths) == [name for name in COURSE_FOLDER if name != "canonical"]
    assert sorted(path.name for path in (dest / "canonical").iterdir()) == sorted(files)  # the nine, as published
    assert all(git_blob_sha1(dest / "canonical" / name) == sha1 for name, sha1 in files.items())
    for name in ("ids-sst-dev.csv", "sts-test-student.csv"):
        assert (dest / name).read_bytes() == (served / name).read_bytes()
    assert (dest / "quora-dev.csv").read_bytes() == QUORA_HEADER + b"".join(QUORA_ROWS[3:])
    assert f"canonical/quora-dev.csv: downloaded, {len(SYNTHETIC_QUORA_DEV)} bytes, SHA-1 ok" in lines
    for path in served.iterdir():                       # again: nothing is fetched, nothing rewritten
        path.unlink()
    lines.clear()
    prepare(dest, base_url, files=files, expected_quora=quora, train_pairs=3, log=lines.append)
    assert sum("already present" in line for line in lines) == len(files) + 2


def test_prepare_from_the_real_files_rebuilds_the_projects_folder_byte_for_byte(server, tmp_path):
    """The canonical Quora dev file is the project's training and dev files joined (header
    once): rebuilt from them, its SHA-1 is the canonical one, so prepare() runs here on the
    real canonical file, served from 127.0.0.1, and must give back the project's files."""
    from tinybert.run.download import COPIED_FILES, PROJECT_QUORA_FILES, prepare
    served, base_url = server
    for name in ("quora-train.csv", "quora-dev.csv", *COPIED_FILES):
        if not (REAL_DATA / name).is_file():
            pytest.fail(f"real data file {REAL_DATA / name} not found: set DATA_DIR to the folder holding them")
    train = (REAL_DATA / "quora-train.csv").read_bytes()
    dev = (REAL_DATA / "quora-dev.csv").read_bytes()
    header = train[:train.index(b"\n") + 1]
    assert dev.startswith(header)
    (served / "quora-dev.csv").write_bytes(train + dev[len(header):])
    for name in COPIED_FILES:
        (served / name).write_bytes((REAL_DATA / name).read_bytes())
    files = {name: CANONICAL_FILES[name] for name in ("quora-dev.csv", *COPIED_FILES)}
    dest = tmp_path / "data"
    prepare(dest, base_url, files=files, log=lambda line: None)        # the project's SHA-1s are checked
    for name in ("quora-train.csv", "quora-dev.csv", *COPIED_FILES):
        assert (dest / name).read_bytes() == (REAL_DATA / name).read_bytes(), name
    assert {name: git_blob_sha1(REAL_DATA / name) for name in PROJECT_QUORA_FILES} == PROJECT_QUORA_FILES
