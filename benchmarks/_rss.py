"""Run a command and report its peak RSS: ``python benchmarks/_rss.py OUTFILE CMD...``.

``ru_maxrss`` survives exec, so a command started straight from the (large)
benchmark process would be charged that process's memory. Started from this
small interpreter instead, the figure is the command's own.
"""

import os
import subprocess
import sys

if __name__ == "__main__":
    out, argv = sys.argv[1], sys.argv[2:]
    p = subprocess.Popen(argv)
    _, status, usage = os.wait4(p.pid, 0)
    with open(out, "w") as f:
        f.write(str(usage.ru_maxrss * 1024))
    sys.exit(os.waitstatus_to_exitcode(status))
