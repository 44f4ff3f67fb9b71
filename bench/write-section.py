"""Replaces (or appends) one `## ` section of BENCHMARKS.md with the text on stdin.

Usage: python3 bench/write-section.py "HEADING" < section.md
The section runs from its heading to the next `## ` heading. What follows a line
`<!-- notes -->` in it (what each change bought, measured by hand) is kept after the
new text: only the script's own tables are replaced.
"""
import pathlib
import re
import sys

NOTES = "<!-- notes -->"

heading = sys.argv[1]
section = sys.stdin.read().strip() + "\n"
path = pathlib.Path("BENCHMARKS.md")
intro = "# Benchmarks\n\nEvery number here comes from a script in `bench/`; rerun it to reproduce.\n"
text = path.read_text() if path.exists() else intro
pattern = re.compile(r"## " + re.escape(heading) + r"\n.*?(?=\n## |\Z)", flags=re.S)
old = pattern.search(text)
if old:
    notes = old.group(0).partition("\n" + NOTES + "\n")
    if notes[1]:
        section += "\n" + NOTES + "\n" + notes[2].rstrip("\n") + "\n"
    text = text[: old.start()] + section + text[old.end() :]
else:
    text = text.rstrip() + "\n\n" + section
path.write_text(text)
