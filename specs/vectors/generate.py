"""Regenerate every vector file in specs/vectors/.

Each generate_*.py beside this script writes its own files and says, in each file's
"source" field, where every vector comes from. The HPKE vector
(hpke-rfc9180-A1-base.json) is copied verbatim from RFC 9180 Appendix A.1 and is not
generated. Run: python specs/vectors/generate.py
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    for script in sorted(HERE.glob("generate_*.py")):
        print(f"running {script.name}", file=sys.stderr)
        runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
