"""Resident memory of the running process, for the benchmarks (Linux only)."""

import os


def rss_bytes():
    """Resident memory now."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes():
    """Peak resident memory since the process started or since the last :func:`reset_peak_rss`.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries that over from the parent process
    across ``exec``, so a child process would report its parent's peak whenever that is
    larger.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status: this benchmark needs Linux")


def reset_peak_rss():
    """Make the current resident memory the peak (VmHWM)."""
    # Linux resets the peak to the current resident size when 5 is written here.
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
