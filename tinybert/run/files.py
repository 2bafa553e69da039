"""Atomic file writes: write to a temporary file beside the target, then rename over it,
so a crash or Ctrl-C mid-write never leaves a half-written checkpoint or prediction file.
A kill -9 mid-write leaves the temporary behind (``.NAME.XXXX.tmp``);
:func:`remove_temporaries` clears them before the next run writes there."""
import os
import shutil
import tempfile

from safetensors.numpy import save_file

from .. import backend


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
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
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


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
