"""Writes or checks Sources/authproxy/link-order.txt, the linker's symbol ordering file.

    link_order.py write MAP OUT DUMP...   functions executed in the callgrind DUMPs (the first one
                                          taken at idle after start-up, the others while serving),
                                          laid out as described below, into OUT
    link_order.py check ORDER BINARY      fails when most of the order's own functions (our modules
                                          and C shims) are no longer in BINARY's symbol table

Layout of the written file, given lld's rule that a section goes where the first of its symbols
listed in the file puts it:
  1. functions that have a section of their own (our code: -function-sections; the Swift runtime's
     C++), those run by the idle proxy first, then those run only while serving, by name within
     a phase;
  2. then functions inside the unsplit .text of an object (the prebuilt Swift libraries are not
     split by function: one name moves the whole object's code), in the same phase order.
Names defined more than once (local helpers such as `$sSqwcp` exist in many objects) are left out:
the name cannot say which copy ran, and every copy would move.
"""

import collections
import re
import subprocess
import sys

# lld's map: "VMA LMA size align" then the name, indented by 1 (output section), 9 (input section,
# "file:(name)") or 17 (symbol) spaces.
MAP_LINE = re.compile(r"^\s*[0-9a-f]+\s+[0-9a-f]+\s+[0-9a-f]+\s+\d+( +)(\S.*)$")
OBJECT = re.compile(r"^c?ob=\((\d+)\)(?: (.*))?$")
FUNCTION = re.compile(r"^(c?fn)=\((\d+)\)(?: (.*))?$")
OURS = ("$s9AuthProxy", "$s10SandboxAPI", "$s9authproxy", "ap_")


def executed(dump, binary_name):
    """Names of the functions of the object named binary_name run in one callgrind dump."""
    objects, functions = {}, {}
    current, called = None, None
    names = []
    seen = set()
    with open(dump, errors="replace") as lines:
        for line in lines:
            line = line.rstrip("\n")
            match = OBJECT.match(line)
            if match:
                ident, name = match.groups()
                if name:
                    objects[ident] = name
                if line.startswith("ob="):
                    current, called = objects[ident], None
                else:
                    called = objects[ident]
                continue
            match = FUNCTION.match(line)
            if not match:
                continue
            kind, ident, name = match.groups()
            if name:
                functions[ident] = name
            owner = current if kind == "fn" else (called or current)
            if kind == "cfn":
                called = None
            name = re.sub(r"'\d+$", "", functions[ident])  # callgrind's recursion-cycle suffix
            if owner and owner.endswith("/" + binary_name) and name not in seen:
                if name.startswith("0x") or name.startswith("("):
                    continue
                seen.add(name)
                names.append(name)
    return names


def sections_of(link_map):
    """For each symbol in the map's .text input sections: (split, count of definitions)."""
    split, count = {}, collections.Counter()
    in_text, current = False, None
    with open(link_map) as lines:
        for line in lines:
            match = MAP_LINE.match(line)
            if not match:
                continue
            indent, name = len(match.group(1)), match.group(2)
            if indent == 1:
                in_text = name == ".text"
            elif indent == 9:
                current = name.endswith(")") and name.split(":(")[-1] != ".text)"
            elif in_text and current is not None:
                split[name] = current
                count[name] += 1
    return split, count


def write(link_map, out, dumps, binary_name="authproxy-order"):
    split, count = sections_of(link_map)
    phases = []
    seen = set()
    for dump in dumps:
        phase = [name for name in executed(dump, binary_name) if name not in seen]
        seen.update(phase)
        phases.append(phase)
    placed, ambiguous, unknown = [], 0, 0
    for want_split in (True, False):
        for phase in phases:
            # Sorted within a phase: callgrind's listing order changes from run to run, and the
            # order inside a phase does not matter (all of it runs), so the file diffs cleanly.
            for name in sorted(phase):
                if name not in split:
                    unknown += want_split
                elif count[name] > 1:
                    ambiguous += want_split
                elif split[name] == want_split:
                    placed.append(name)
    with open(out, "w") as f:
        f.write("".join(name + "\n" for name in placed))
    print(
        f"link-order: {len(placed)} functions ({', '.join(str(len(p)) for p in phases)} per phase), "
        f"{ambiguous} names defined more than once left out, {unknown} not in the map"
    )


def check(order, binary):
    ours = [line.strip() for line in open(order) if line.startswith(OURS)]
    table = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    present = {parts[2] for parts in (line.split() for line in table.splitlines()) if len(parts) == 3}
    found = sum(name in present for name in ours)
    share = found / len(ours) if ours else 0
    print(f"link-order: {found} of the {len(ours)} own functions listed are in {binary} ({share:.0%})")
    if share < 0.6:
        print("link-order: the order file is stale; run scripts/link-order", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "write":
        write(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
