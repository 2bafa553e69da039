"""Atomic file writes: write to a temporary file beside the target, then rename over it,
so a crash or Ctrl-C mid-write never leaves a half-written checkpoint or prediction file.
A kill -9 mid-write leaves the temporary behind (``.NAME.XXXX.tmp``);
:func:`remove_temporaries` clears them before the next run writes there. A write that runs
out of space raises :class:`DiskFull` naming the file it was for (the old file is kept).

Reading what a run wrote: :func:`read_json` and :func:`read_jsonl` fail with one line naming
the file (and the line) when it is not UTF-8, not JSON, or not a JSON object."""
import errno
import hashlib
import json
import os
import shutil
import tempfile

from safetensors import SafetensorError
from safetensors.numpy import save_file

from .. import backend


class DiskFull(OSError):
    """A write failed for want of space; ``filename`` is the file it was for."""


def is_disk_full(error):
    """ENOSPC, or safetensors' error wrapping it (it is no OSError)."""
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    return isinstance(error, SafetensorError) and ("os error 28" in str(error) or "No space left" in str(error))


def _disk_full(error, path):
    if isinstance(error, DiskFull):
        return error
    return DiskFull(errno.ENOSPC, "no space left on device", os.fspath(path)) if is_disk_full(error) else None


def atomic_write(path, write):
    """Call ``write(temporary_path)``, then move the result to ``path`` in one rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes files private; give the usual mode
        os.replace(temporary, path)
    except BaseException as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        full = _disk_full(error, path)
        if full is not None:
            raise full from None
        raise


def atomic_folder(path, write):
    """Call ``write(temporary_folder)``, then put the result at ``path`` in place of
    whatever was there: the folder is either the old one or the whole new one, never a mix."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(dir=parent, prefix="." + os.path.basename(os.path.abspath(path)) + ".", suffix=".tmp")
    try:
        write(temporary)
        os.chmod(temporary, 0o777 & ~_umask())
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(temporary, path)
    except BaseException as error:
        shutil.rmtree(temporary, ignore_errors=True)
        full = _disk_full(error, path)
        if full is not None:
            raise full from None
        raise


def remove_temporaries(folder):
    """Delete what interrupted atomic writes left in ``folder`` (``.NAME.XXXX.tmp`` files
    and folders); return their names."""
    if not os.path.isdir(folder):
        return []
    left = sorted(name for name in os.listdir(folder) if name.startswith(".") and name.endswith(".tmp"))
    for name in left:
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    return left


def write_text(path, text):
    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, write)


def save_arrays(path, arrays, metadata=None):
    """Save {name: array} (NumPy or CuPy) as safetensors, atomically."""
    host = {name: backend.to_numpy(array) for name, array in arrays.items()}
    atomic_write(path, lambda temporary: save_file(host, temporary, metadata=metadata))


def read_json(path):
    """The JSON object in ``path``; a ValueError naming the file when it is not one."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: not a JSON object (found {json.dumps(value)[:40]})")
    return value


def read_jsonl(path):
    """[(line number, the JSON object, the line's text)] of a JSON-lines file, blank lines
    left out, and a last line without its newline that is not JSON too: what a killed writer
    half wrote. Any other line that is not UTF-8, not JSON or not an object is a ValueError
    naming the file and the line."""
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    found = []
    for number, raw in enumerate(lines, 1):
        half_written = number == len(lines) and not raw.endswith(b"\n")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            if half_written:
                break
            raise ValueError(f"{path}, line {number}: not UTF-8 (byte {error.start})") from None
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            if half_written:
                break
            raise ValueError(f"{path}, line {number}: not valid JSON ({error})") from None
        if not isinstance(value, dict):
            raise ValueError(f"{path}, line {number}: not a JSON object (found {text.strip()[:40]})")
        found.append((number, value, text))
    return found


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sha256(path):
    """The hex SHA-256 of the file at ``path``, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
