"""Make the course's data folder: the nine CS224N minBERT task files, each checked against its
git blob SHA-1, and the project's Quora split carved from the canonical Quora dev file.

Usage: ``python -m tinybert.run.download [--dest DIR] [--base-url URL]`` (``make data``: into ``data/``)

The files come from the public repository ``gpoesia/minbert-default-final-project``
at a pinned commit, so their contents are known in advance: each is identified
by the SHA-1 git gives it (what ``git hash-object FILE`` prints). A file is
written to a temporary name, checked, and only then renamed into place, so an
interrupted or corrupted download never leaves a half-written file behind
under the real name.

``DEST/canonical/`` receives the nine files as published. ``DEST`` itself becomes the folder
the course reads (``$DATA_DIR``, else ``data/``), the same eight files as ``../shared/data``:
the six SST and STS files, copied, and the project's Quora split, which every number of the
course was measured on. Its training file is the canonical *dev* file's header and first
16,214 pairs, its dev file the header and the other 4,000 (``head -n 16215`` and ``tail -n
+16216``, lines cut at newlines); the canonical training file (141,506 pairs) was not
available to the project offline, and there is no Quora test file. Both carved files are
checked against their SHA-1s too. Nothing is written outside DEST.
"""
import argparse
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..data import default_data_dir

DEFAULT_BASE_URL = (
    "https://raw.githubusercontent.com/gpoesia/minbert-default-final-project/"
    "7ac8260577fc12a86c7aaf38918056c30054ef39/data/"
)

# File name -> git blob SHA-1 at the pinned commit.
CANONICAL_FILES = {
    "ids-sst-train.csv": "9cb7333cb1dae49c2bd2a4b56a24882a6e8704b5",
    "ids-sst-dev.csv": "3171aa629a340809d2db4a50df8f6e5ec9420ab0",
    "ids-sst-test-student.csv": "bbd2313758825f86e24416d6aad64cd93370cf7a",
    "quora-train.csv": "a3b5546f6a0e65b60a328a5d294d1038f5bed1da",
    "quora-dev.csv": "de7cfa32428fd470b93f778fccc45a619e01336f",
    "quora-test-student.csv": "f257ef00558555afb50819578a58205732b16354",
    "sts-train.csv": "12b17760e7795fee35aeeabc290d5651de02622a",
    "sts-dev.csv": "9392860e584717976b8d817cc40c9e6ceeec27e0",
    "sts-test-student.csv": "25f0cf8fafdd1f82b9e2bb460c708af34341ce60",
}

# The course's folder: the SST and STS files as published, copied from canonical/ ...
COPIED_FILES = tuple(name for name in CANONICAL_FILES if name.startswith(("ids-sst-", "sts-")))
# ... and the project's Quora split of the canonical quora-dev.csv (carve_quora), name -> git SHA-1.
QUORA_SOURCE = "quora-dev.csv"
QUORA_TRAIN_PAIRS = 16_214
PROJECT_QUORA_FILES = {
    "quora-train.csv": "f1a2cab3430db97a835341e356b42e80d07bd0cf",
    "quora-dev.csv": "086fe2820b1056f2339ab4ab576b4ae8a8c4f171",
}
CANONICAL_FOLDER = "canonical"

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60


class DownloadError(RuntimeError):
    """A file could not be fetched, or its contents were not the expected ones."""


def git_blob_sha1(path) -> str:
    """The SHA-1 git gives a file: sha1 of ``b"blob <size>\\0"`` followed by the contents."""
    path = Path(path)
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, target: Path) -> None:
    """Stream ``url`` into the file ``target``."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response, open(target, "wb") as out:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
    except urllib.error.HTTPError as error:
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except OSError as error:  # URLError (no such host, refused), timeouts, resets
        raise DownloadError(f"{url}: {getattr(error, 'reason', error)}") from None


def download_file(name: str, expected_sha1: str, dest: Path, base_url: str) -> str:
    """Make sure ``dest/name`` exists with the expected hash; return what was done."""
    final = dest / name
    if final.is_file() and git_blob_sha1(final) == expected_sha1:
        return "already present"

    # The temporary file lives in dest so that the rename is atomic.
    handle, temporary = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".part")
    os.close(handle)
    temporary = Path(temporary)
    try:
        _fetch(base_url + name, temporary)
        actual_sha1 = git_blob_sha1(temporary)
        if actual_sha1 != expected_sha1:
            raise DownloadError(f"{name}: wrong contents: expected git SHA-1 {expected_sha1}, got {actual_sha1}")
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    return f"downloaded, {final.stat().st_size:,} bytes, SHA-1 ok"


def download(dest, base_url=DEFAULT_BASE_URL, files=CANONICAL_FILES, log=print) -> list[Path]:
    """Fetch every file of ``files`` (name -> git SHA-1) from ``base_url`` into ``dest``.

    Files already there with the right hash are skipped. Stops at the first
    failure with a DownloadError naming the file. Returns the paths of all files.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if not base_url.endswith("/"):
        base_url += "/"
    for name, expected_sha1 in files.items():
        log(f"{name}: {download_file(name, expected_sha1, dest, base_url)}")
    return [dest / name for name in files]


def _write_checked(target: Path, content: bytes, expected_sha1) -> None:
    """Write ``content`` to ``target`` through a temporary file in its folder, renamed into
    place only if its git SHA-1 is ``expected_sha1`` (None: not checked)."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    temporary = Path(temporary)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        actual_sha1 = git_blob_sha1(temporary)
        if expected_sha1 is not None and actual_sha1 != expected_sha1:
            raise DownloadError(f"{target.name}: wrong contents: expected git SHA-1 {expected_sha1}, got {actual_sha1}")
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def split_quora(content: bytes, train_pairs: int = QUORA_TRAIN_PAIRS) -> tuple[bytes, bytes]:
    """(training file, dev file) of the project's split of a Quora file's bytes: the header
    line and its first ``train_pairs`` lines, and the header and the rest. Lines are cut at
    ``\n`` alone, as ``head`` and ``tail`` count them, and kept byte for byte. A file with
    no header, or with no line left for the dev file, is a DownloadError."""
    pieces = content.split(b"\n")          # not splitlines(), which would cut at a \r too
    lines = [piece + b"\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    if len(lines) < train_pairs + 2:
        raise DownloadError(f"{QUORA_SOURCE}: {max(len(lines) - 1, 0):,} pairs, but the split needs more than "
                            f"{train_pairs:,} (the training file's)")
    header = lines[0]
    return header + b"".join(lines[1:train_pairs + 1]), header + b"".join(lines[train_pairs + 1:])


def carve_quora(source, dest, expected=PROJECT_QUORA_FILES, train_pairs=QUORA_TRAIN_PAIRS, log=print) -> list[Path]:
    """Write the project's quora-train.csv and quora-dev.csv (split_quora) of the file
    ``source`` into ``dest``, each checked against ``expected`` (name -> git SHA-1; None:
    unchecked) before it takes its name. Returns their paths."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    parts = split_quora(Path(source).read_bytes(), train_pairs)
    paths = []
    for name, content in zip(("quora-train.csv", "quora-dev.csv"), parts):
        sha1 = (expected or {}).get(name)
        present = dest / name
        if sha1 is not None and present.is_file() and git_blob_sha1(present) == sha1:
            log(f"{name}: already present")
        else:
            _write_checked(present, content, sha1)
            pairs = len(content.split(b"\n")) - 2 + (not content.endswith(b"\n"))   # lines, less the header
            log(f"{name}: {pairs:,} pairs of {Path(source).name}" + (", SHA-1 ok" if sha1 is not None else ""))
        paths.append(present)
    return paths


def prepare(dest, base_url=DEFAULT_BASE_URL, files=CANONICAL_FILES, copied=COPIED_FILES,
            expected_quora=PROJECT_QUORA_FILES, train_pairs=QUORA_TRAIN_PAIRS, log=print) -> list[Path]:
    """The whole folder the course reads, in one go: ``files`` downloaded and checked into
    ``dest/canonical/`` (download), the ``copied`` ones copied from there into ``dest``, and
    the project's Quora split carved from the canonical dev file (carve_quora). Running it
    again redoes only what is missing or wrong. Returns the paths of the files in ``dest``."""
    dest = Path(dest)
    canonical = dest / CANONICAL_FOLDER
    download(canonical, base_url, files=files, log=lambda line: log(f"{CANONICAL_FOLDER}/{line}"))
    paths = []
    for name in copied:
        target = dest / name
        if not (target.is_file() and git_blob_sha1(target) == files[name]):
            _write_checked(target, (canonical / name).read_bytes(), files[name])
        paths.append(target)
    log(f"{len(copied)} SST and STS files: copied from {CANONICAL_FOLDER}/")
    return paths + carve_quora(canonical / QUORA_SOURCE, dest, expected_quora, train_pairs, log)


def main(argv=None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "))
    parser.add_argument("--dest", default=default_data_dir(), help="folder to write to (default: $DATA_DIR or ./data)")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL,
                        help="URL of the folder holding the nine files (file:///path/ for a local copy)")
    args = parser.parse_args(argv)
    try:
        paths = prepare(args.dest, args.base_url, files=CANONICAL_FILES, copied=COPIED_FILES,
                        expected_quora=PROJECT_QUORA_FILES, train_pairs=QUORA_TRAIN_PAIRS)
    except (DownloadError, OSError) as error:  # OSError: dest not writable, disk full
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"the course's {len(paths)} files are in {args.dest} (DATA_DIR), the {len(CANONICAL_FILES)} canonical "
          f"ones in {os.path.join(args.dest, CANONICAL_FOLDER)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
