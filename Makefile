# One command each; see the scripts for what they do and their options.
#   make help      this list
#   make install   build and install the extension into the system PostgreSQL, or the one PG_CONFIG names
#                  (tools/setup.sh)
#   make test      every test layer (tools/test.sh; tools/test.sh --help lists the layers and runs nothing)
#   make package   target/package/sqlchat-<version>-pg<major>-<arch>-linux.tar.gz with INSTALL.md (tools/package.sh)
#   make lint      rustfmt and clippy -D warnings, core and extension (tools/lint.sh)
#   make demo      the demo on a cluster of its own (tools/demo.sh)
#   make eval      evaluation on the public question sets (results/eval.md); EVAL_FLAGS=--quick for a smoke run;
#                  then teaching on the defog databases (results/eval_teach.json, tools/eval_teach.py)
#   make bench     benchmarks of the optimised build (results/bench.md, results/faults.json, results/jobs.json,
#                  results/ops_bench.json);
#                  BENCH_FLAGS=--quick for a smoke run
# eval and bench read the public data from $SQLCHAT_EVAL_DIR (default ../shared/eval) and need the
# extension installed (make install) and the Python packages in tests/requirements.txt.
PYTHON ?= python3

.PHONY: install test package lint demo eval bench help

install:
	tools/setup.sh

test:
	tools/test.sh

package:
	tools/package.sh

lint:
	tools/lint.sh

demo:
	tools/demo.sh

eval:
	$(PYTHON) tools/eval.py $(EVAL_FLAGS)
	$(PYTHON) tools/eval_teach.py

bench:
	tools/setup.sh --release
	$(PYTHON) tools/bench.py $(BENCH_FLAGS)
	$(PYTHON) tools/bench_faults.py $(BENCH_FLAGS)
	$(PYTHON) tools/bench_jobs.py $(BENCH_FLAGS)
	$(PYTHON) tools/bench_ops.py $(BENCH_FLAGS)

help:
	@sed -n '/^[^#]/q; s/^# \{0,1\}//p' $(firstword $(MAKEFILE_LIST))
