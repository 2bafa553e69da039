"""Atomic file writes: write to a temporary file beside the target, then rename over it,
so a crash or Ctrl-C mid-write never leaves a half-written checkpoint or prediction file."""
import os
import tempfile

from safetensors.numpy import save_file

from . import backend


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
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_text(path, text):
    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, write)


def save_arrays(path, arrays, metadata=None):
    """Save {name: array} (NumPy or CuPy) as safetensors, atomically."""
    host = {name: backend.to_numpy(array) for name, array in arrays.items()}
    atomic_write(path, lambda temporary: save_file(host, temporary, metadata=metadata))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
