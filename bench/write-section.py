"""Replaces (or appends) one `## ` section of BENCHMARKS.md with the text on stdin.

Usage: python3 bench/write-section.py "HEADING" < section.md
The section runs from its heading to the next `## ` heading.
"""
import pathlib
import re
import sys

heading = sys.argv[1]
section = sys.stdin.read().strip() + "\n"
path = pathlib.Path("BENCHMARKS.md")
intro = "# Benchmarks\n\nEvery number here comes from a script in `bench/`; rerun it to reproduce.\n"
text = path.read_text() if path.exists() else intro
pattern = re.compile(r"## " + re.escape(heading) + r"\n.*?(?=\n## |\Z)", flags=re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text)
else:
    text = text.rstrip() + "\n\n" + section
path.write_text(text)
