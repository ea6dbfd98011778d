"""Call analytics: the call report in a transcript, categories, the QA report and alerts.

call.py        segments (+ loudness) → the `call` object (plain functions)
categories.py  the rules model (YAML, CRD, API) and the engine that matches them
report.py      many transcripts → calls.csv, report.json, report.html
charts.py      inline SVG charts for the HTML report
alerts.py      matches of `alert: true` categories → metric and signed webhook
"""
