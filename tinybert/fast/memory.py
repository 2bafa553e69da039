"""The allocator setting of the fast path: glibc's malloc keeps freed memory for reuse."""
import ctypes


def reuse_freed_memory():
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the OS.

    Every activation of a BERT step is a fresh array of megabytes. By default glibc serves
    such blocks with mmap and unmaps them when freed, so the next step touches brand-new
    pages, a page fault every 4 KiB (``make bench`` counts them per training step).
    With the mmap threshold at its largest (32 MiB) and trimming off (mallopt(3): a trim
    threshold of -1), freed blocks go back to the heap and are reused; the peak memory is
    unchanged. A no-op where the C library is not glibc. A process-wide setting: it stays
    after the fast path is switched off."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mmap_threshold, trim_threshold = -3, -1   # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD in malloc.h
        libc.mallopt(mmap_threshold, 32 << 20)
        libc.mallopt(trim_threshold, -1)
    except (OSError, AttributeError):
        pass
