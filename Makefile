# The two commands of the README, and a few more.
.PHONY: venv demo test bench lint

venv:
	bash scripts/setup_venv.sh

demo: venv
	.venv/bin/dense-descriptors demo --out demo_output

test: venv
	bash scripts/run_tests.sh -q

bench: venv
	bash scripts/run_tests.sh -q -m bench -s benchmarks

lint: venv
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
