#!/usr/bin/env python3
"""Totals of one callgrind output file, for bench/instructions.sh:

  callgrind_totals.py FILE   ->   {"instructions": N, "allocations": N}

instructions: the run's total Ir. allocations: calls into the heap allocator's entry points
(glibc's malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign; mimalloc's mi_malloc*,
mi_zalloc*, mi_calloc*, mi_realloc*) from anywhere but the allocator itself, so an entry point
that calls another is counted once. Counting calls in the call graph works whichever allocator
the binary uses (DHAT only sees glibc's).
"""

import json
import re
import sys

ENTRY = re.compile(
    r"^(malloc|calloc|realloc|posix_memalign|aligned_alloc|memalign|"
    r"mi_(heap_)?(malloc|zalloc|calloc|realloc|rezalloc|recalloc)[a-z_]*)$"
)
ALLOCATOR = re.compile(r"^(_?mi_|_int_|__libc_|tcache|malloc|calloc|realloc|posix_memalign|aligned_alloc|memalign)")


def short(name):
    """`malloc'2` (a recursion level) -> `malloc`."""
    return name.split("'")[0]


def totals(path):
    names = {}  # compressed id -> name, for fn/cfn
    caller = ""
    callee = None
    instructions = None
    allocations = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(("fn=", "cfn=")):
                key, _, rest = line.rstrip("\n").partition("=")
                m = re.match(r"^\((\d+)\)(?: (.*))?$", rest)
                if m:
                    if m.group(2) is not None:
                        names[m.group(1)] = m.group(2)
                    name = names.get(m.group(1), "")
                else:
                    name = rest
                if key == "fn":
                    caller, callee = short(name), None
                else:
                    callee = short(name)
            elif line.startswith("calls=") and callee is not None:
                if ENTRY.match(callee) and not ALLOCATOR.match(caller):
                    allocations += int(line[6:].split()[0])
                callee = None
            elif line.startswith(("summary:", "totals:")) and instructions is None:
                instructions = int(line.split()[1])
    return {"instructions": instructions, "allocations": allocations}


if __name__ == "__main__":
    print(json.dumps(totals(sys.argv[1])))
