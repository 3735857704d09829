"""The flagship demo run by ``make demo``; grows with every issue."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sparsa.demo")
    ap.add_argument("--out", default="demo-out")
    args = ap.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)


if __name__ == "__main__":
    main()
