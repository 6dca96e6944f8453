"""`python3 -m emulator.bundle wheels FILE DIR [--verify KEYFILE]`: take a bundle's wheels out, with the
standard library only (before any virtual environment exists; `make up BUNDLE=FILE` runs it). With
--verify, a bundle not signed with that key is refused before any wheel is written: pip installs them."""

from __future__ import annotations

import sys
from pathlib import Path

from emulator.bundle import signing
from emulator.bundle.archive import extract_wheels, python_tag, read_manifest
from emulator.errors import EmulatorError

USAGE = "usage: python3 -m emulator.bundle wheels FILE DIR [--verify KEYFILE]"


def main(argv: list[str]) -> int:
    key_file = None
    if len(argv) == 5 and argv[3] == "--verify":
        argv, key_file = argv[:3], Path(argv[4])
    if len(argv) != 3 or argv[0] != "wheels":
        print(USAGE, file=sys.stderr)
        return 2
    bundle, destination = Path(argv[1]), Path(argv[2])
    try:
        manifest = read_manifest(bundle)
        if key_file is not None:
            signing.check(bundle, manifest, signing.read_key(key_file))
        if not manifest.wheels:
            print(f"error: {bundle} holds no wheels (it was made with --without-wheels)", file=sys.stderr)
            return 1
        if manifest.python != python_tag():
            print(
                f"warning: the bundle's wheels are for {manifest.python}; this is {python_tag()} "
                "(pip will say what it cannot install)",
                file=sys.stderr,
            )
        written = extract_wheels(bundle, destination, manifest)
    except EmulatorError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    print(f"{len(written)} wheels from {bundle} in {destination}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
