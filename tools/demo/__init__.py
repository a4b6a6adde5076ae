"""The end-to-end stack behind `make demo` and tests/test_e2e_monitoring.py.

stack.py     fake Z.AI upstream + both variants' pods (env from `helm template`) + a real Prometheus
pods.py      rendered Deployment -> local pods (what Kubernetes supplies is emulated; see there)
prometheus.py  scrape jobs from the rendered ServiceMonitors, rule files from the PrometheusRules
traffic.py   traffic through the official openai and anthropic SDKs, with an optional canary fault
report.py    every dashboard panel's query per variant and the alert states, written to out/demo/
processes.py child processes in their own process groups, stopped without leaving any behind
__main__.py  `python -m tools.demo` (what `make demo` runs)
"""
