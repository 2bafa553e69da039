"""Download the nine CS224N minBERT task files and check each against its git blob SHA-1.

Usage: ``python -m tinybert.run.download [--dest DIR] [--base-url URL]``

The files come from the public repository ``gpoesia/minbert-default-final-project``
at a pinned commit, so their contents are known in advance: each is identified
by the SHA-1 git gives it (what ``git hash-object FILE`` prints). A file is
written to a temporary name, checked, and only then renamed into place, so an
interrupted or corrupted download never leaves a half-written file behind
under the real name.
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


def main(argv=None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default=default_data_dir(), help="folder to write to (default: $DATA_DIR or ./data)")
    parser.add_argument("--base-url", default=DEFAULT_BASE_URL, help="URL of the folder holding the files")
    args = parser.parse_args(argv)
    try:
        download(args.dest, args.base_url, files=CANONICAL_FILES)
    except (DownloadError, OSError) as error:  # OSError: dest not writable, disk full
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"all {len(CANONICAL_FILES)} files are in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
