"""Stand-in for ansible-test's pip bootstrap script (get-pip.py), which this machine cannot download.

ansible-test creates each sanity venv without pip, then runs this file as get-pip.py with
pip's install options (`pip==X.Y`, `--no-setuptools`, ...). Python's bundled ensurepip
provides a pip, which then installs the exact pip asked for from the package index.
`make sanity` copies this file to where ansible-test looks for the bootstrap script.
"""
import subprocess
import sys

if __name__ == "__main__":
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
    # ensurepip neither knows nor needs get-pip.py's own switches.
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
