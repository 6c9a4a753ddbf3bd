#!/usr/bin/env python3
"""validate_report.py SCHEMA REPORT.json - check an RFC 8460 report with an
independent validator (Debian's python3-jsonschema), formats enforced."""
import json
import sys

import jsonschema

schema = json.load(open(sys.argv[1]))
report = json.load(open(sys.argv[2]))
validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
errors = sorted(validator.iter_errors(report), key=lambda e: list(e.path))
for e in errors:
    print("invalid: %s: %s" % ("/".join(str(p) for p in e.path), e.message))
print("valid" if not errors else "invalid")
sys.exit(1 if errors else 0)
