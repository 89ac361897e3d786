# SPDX-License-Identifier: Apache-2.0
"""The `numafeed` command as pip installs it: the entry point runs the
command's binary, which travels inside the package (numafeed/_bin)."""
import os
import sys


def binary():
    """Where the package's numafeed command is."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin", "numafeed")


def main():
    exe = binary()
    if not os.access(exe, os.X_OK):
        sys.exit(f"numafeed: the command is missing from the installed package ({exe}); "
                 f"reinstall numafeed")
    os.execv(exe, ["numafeed"] + sys.argv[1:])


if __name__ == "__main__":
    main()
